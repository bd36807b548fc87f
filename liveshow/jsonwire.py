"""JSON for the messages this server writes and reads back many times a second (commands, answers,
bus events, room frames): compact, UTF-8, through orjson.

Every bid is encoded and decoded about ten times on its way between processes: with the standard
library that was 5-10 µs each, with orjson under 2. Only for what the server itself wrote, where every
integer fits in 64 bits (money is capped far below): orjson would read a larger one as a float. Frames
from clients are parsed by the standard library (chat/protocol.py), exactly.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value, option=_OPTIONS).decode()
    except TypeError:  # a type orjson does not know, or an integer beyond 64 bits
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def loads(raw: str | bytes) -> Any:
    return orjson.loads(raw)
