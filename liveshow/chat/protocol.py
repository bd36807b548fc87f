"""The room's wire protocol: decode and validate client frames, shape server frames.

Client frames are JSON objects ``{"type": ..., "id": <optional client id>, ...}``; a reply to a frame
that had an ``id`` carries ``"reply_to": id``. Server events arrive batched: one WebSocket message per
flush tick, ``{"type": "batch", "events": [frame, ...]}``, each frame being ``Event.wire()`` (so it
has ``seq`` and ``ts``). Replies, errors and time answers are sent at once as single frames.
"""

from __future__ import annotations

import re
from typing import Any

from liveshow import jsonwire
from liveshow.errors import ValidationFailed
from liveshow.jsonbody import parse_object

MAX_FRAME_BYTES = 64 * 1024
# WebSocket close codes (RFC 6455 §7.4.1) and our own (4000-4999).
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_LATER = 1013  # dropped for reading too slowly: reconnect and resume with last_seq
CLOSE_NOT_FOUND = 4404

MAX_ID_CHARS = 64
# A client-made idempotency key: the same shape the claim and bid keys have.
KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{8,80}$")


class FrameTooBig(Exception):
    """A frame over MAX_FRAME_BYTES: the connection is closed, not answered."""


def decode(raw: str | bytes | None) -> dict[str, Any]:
    """The validated client message; ValidationFailed (-> error frame) for anything malformed."""
    if raw is None:
        raise ValidationFailed("Empty frame.")
    # A character is at most 4 bytes of UTF-8: a frame that short needs no encoding to be measured.
    size = len(raw) if isinstance(raw, bytes) or len(raw) * 4 <= MAX_FRAME_BYTES else _utf8_size(raw)
    if size > MAX_FRAME_BYTES:
        raise FrameTooBig(f"frame of {size} bytes is over {MAX_FRAME_BYTES}")
    if isinstance(raw, bytes):
        raise ValidationFailed("Binary frames are not accepted: send JSON text.")
    # The same reader as every HTTP body: depth and number checks, one set of reasons.
    message = parse_object(raw)
    kind = message.get("type")
    if not isinstance(kind, str) or not kind or len(kind) > 40:
        raise ValidationFailed("Missing field: type (a string).")
    msg_id = message.get("id")
    if msg_id is not None and not (
        (isinstance(msg_id, str) and len(msg_id) <= MAX_ID_CHARS)
        or (isinstance(msg_id, int) and not isinstance(msg_id, bool))
    ):
        raise ValidationFailed("Field id must be a string (up to 64 characters) or an integer.")
    return message


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def reply_id(message: dict[str, Any] | None) -> str | int | None:
    if message is None:
        return None
    msg_id = message.get("id")
    return msg_id if isinstance(msg_id, str | int) and not isinstance(msg_id, bool) else None


def get_int(message: dict[str, Any], name: str, *, low: int | None = None, high: int | None = None) -> int:
    value = message.get(name)
    if value is None:
        raise ValidationFailed(f"Missing field: {name}.", field=name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationFailed(f"Field {name} must be an integer.", field=name)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValidationFailed(f"Field {name} must be between {low} and {high}.", field=name)
    return value


def get_optional_int(message: dict[str, Any], name: str) -> int | None:
    if message.get(name) is None:
        return None
    return get_int(message, name)


def get_str(message: dict[str, Any], name: str, *, max_chars: int, allow_empty: bool = False) -> str:
    value = message.get(name)
    if value is None:
        raise ValidationFailed(f"Missing field: {name}.", field=name)
    if not isinstance(value, str):
        raise ValidationFailed(f"Field {name} must be a string.", field=name)
    value = value.strip()
    if not value and not allow_empty:
        raise ValidationFailed(f"Field {name} is empty.", field=name)
    if len(value) > max_chars:
        raise ValidationFailed(f"Field {name} is over {max_chars} characters.", field=name)
    return value


def get_optional_key(message: dict[str, Any]) -> str | None:
    """The command's idempotency key; None when the client sent none (older pages)."""
    key = message.get("key")
    if key is None:
        return None
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):  # not match: "$" allows a final newline
        raise ValidationFailed("Field key must be 8 to 80 letters, digits or -_.:", field="key")
    return key


def get_str_list(message: dict[str, Any], name: str, *, max_items: int, max_chars: int) -> list[str]:
    value = message.get(name, [])
    if not isinstance(value, list) or len(value) > max_items:
        raise ValidationFailed(f"Field {name} must be a list of up to {max_items} strings.", field=name)
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or len(item.strip()) > max_chars:
            raise ValidationFailed(
                f"Every item of {name} must be a non-empty string of up to {max_chars} characters.",
                field=name,
            )
        out.append(item.strip())
    return out


def encode(frame: dict[str, Any]) -> str:
    return jsonwire.dumps(frame)


def encode_batch(wire_frames: list[str]) -> str:
    """One message for a tick's frames; the frames are already JSON so they are joined, not re-encoded."""
    return '{"type":"batch","events":[' + ",".join(wire_frames) + "]}"
