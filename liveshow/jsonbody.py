"""The one JSON reader for client input: HTTP bodies and WebSocket frames.

Hostile input must cost little and be answered: a body is read in chunks and reading stops at the
limit, chunked uploads included (413); a body that is not JSON is refused before it is read (415);
nesting deeper than ``MAX_DEPTH`` is refused before the parser sees it (the standard parser recurses,
and a few thousand ``[`` raised RecursionError, a 500); ``NaN``/``Infinity`` and non-finite numbers,
which no client of ours sends and which poison amounts, are refused. Every refusal is a DomainError,
so handlers and the room answer it in the shape they already use.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import Message, Receive

from liveshow.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed

MAX_JSON_BYTES = 64 * 1024
MAX_DEPTH = 32
JSON_TYPE = "application/json"

# A JSON string once its escapes are gone: what is inside one is never structure. (No alternation, so
# no backtracking: a pattern that also matched escapes went quadratic on '"\\"\\"\\"...'.)
_STRING = re.compile(r'"[^"]*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def depth_of(text: str) -> int:
    """The deepest nesting of arrays and objects, counted without parsing (strings are skipped).

    Escaped backslashes go first, then escaped quotes, left to right as a parser reads them; what is
    left of every string is then a plain quoted run. Linear in the text's length.
    """
    bare = _STRING.sub("", text.replace("\\\\", "").replace('\\"', ""))
    depth = deepest = 0
    for bracket in _BRACKETS.findall(bare):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValidationFailed(f"{name} is not a number JSON allows.")


def _finite(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValidationFailed("A number is too large.")
    return value


# Built once: json.loads with options builds a decoder per call, which tripled the cost of a bid frame.
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)
# The values a flat object read by orjson may hold and be exactly what the standard library reads: no
# float (orjson reads an integer past 64 bits as one), no container (left to the depth rules below).
_PLAIN = frozenset({str, int, bool, type(None)})


def _flat(raw: str) -> dict[str, Any] | None:
    """The object orjson reads, where that is certainly what the standard library would read: a flat
    object of strings, integers, booleans and nulls (a bid, a claim, a chat line). None otherwise,
    including all that orjson refuses (lone surrogates, NaN, a BOM...), for the standard library to
    read or refuse with its own reason. A bid frame costs a quarter of the standard parse this way."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict:
        return None
    for value in data.values():
        if type(value) not in _PLAIN:
            return None
    return data


def parse_object(raw: str | bytes, *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """A JSON object from client text, or ValidationFailed with a reason a person can act on.

    The standard library parses anything but a flat object of plain values (see _flat): a client's
    10**30 must stay an integer (and be refused as an absurd amount by the rules), where orjson would
    read it as a float.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed("JSON must be UTF-8 text.") from None
    flat = _flat(raw)
    if flat is not None:
        return flat
    # Counting openers is C-speed and bounds the depth: the scan runs only when it could matter.
    if raw.count("[") + raw.count("{") > max_depth and depth_of(raw) > max_depth:
        raise ValidationFailed(f"JSON nested more than {max_depth} levels deep.")
    try:
        data = _DECODER.decode(raw)
    except ValidationFailed:
        raise
    except (ValueError, RecursionError):
        # ValueError covers malformed text and integers of over 4,300 digits.
        raise ValidationFailed("Malformed JSON.") from None
    if not isinstance(data, dict):
        raise ValidationFailed("Send a JSON object.")
    return data


def too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The body is larger than {max_bytes} bytes.", limit=max_bytes)


async def read_limited(request: Request, max_bytes: int) -> bytes:
    """The body, read chunk by chunk; 413 as soon as it passes ``max_bytes`` (the rest is never read).

    A declared Content-Length over the limit is refused before anything is read; a chunked body (no
    Content-Length) or one that lies about its length is stopped by counting.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _no_body(request: Request) -> bool:
    """What the headers say, so that a body of the wrong type is refused without reading it."""
    headers = request.headers
    if "transfer-encoding" in headers:
        return False
    return headers.get("content-length", "0").strip() == "0"


def limit_body(request: Request, max_bytes: int) -> None:
    """From now on, reading ``request``'s body (form parsing included) past ``max_bytes`` raises 413.

    Counts what actually arrives, so it holds for chunked bodies and lying Content-Length headers. It
    wraps the request's own receive (a private attribute of Starlette's Request) rather than making a
    second Request, so that the parsed form stays cached where every later reader looks for it.
    """
    receive: Receive = request._receive
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > max_bytes:
                raise too_large(max_bytes)
        return message

    request._receive = counted


def is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == JSON_TYPE


async def read_json(
    request: Request, *, max_bytes: int = MAX_JSON_BYTES, empty_ok: bool = False
) -> dict[str, Any]:
    """The request's JSON object. ``empty_ok``: a request with no body at all means ``{}``.

    Call it after authentication: an unauthenticated caller should never make us read a byte.
    """
    if not is_json(request):
        if empty_ok and _no_body(request):
            return {}
        raise UnsupportedMediaType("Send JSON (Content-Type: application/json).")
    body = await read_limited(request, max_bytes)
    if empty_ok and not body.strip():
        return {}
    return parse_object(body)
