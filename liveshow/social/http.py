"""Small request helpers shared by the social handlers: bounded JSON bodies and typed fields."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from liveshow import jsonbody
from liveshow.errors import ValidationFailed

MAX_JSON_BYTES = 8 * 1024


async def read_json(request: Request, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The request's JSON object through the one reader (liveshow.jsonbody); no body means ``{}``."""
    return await jsonbody.read_json(request, max_bytes=max_bytes, empty_ok=True)


def opt_bool(data: dict[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ValidationFailed(f"{key} must be true or false.")
    return value


def req_int(data: dict[str, Any], key: str, low: int, high: int) -> int:
    value = data.get(key)
    # bool is an int in Python; a price of `true` is a client bug, not one cent.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationFailed(f"{key} must be a whole number.")
    if not low <= value <= high:
        raise ValidationFailed(f"{key} must be between {low} and {high}.")
    return value


def path_int(request: Request, name: str) -> int:
    raw = request.path_params[name]
    try:
        value = int(raw)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"{name} must be a number.") from exc
    if not 0 < value < 2**31:
        raise ValidationFailed(f"{name} out of range.")
    return value
