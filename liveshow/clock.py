"""Time in one place: aware UTC datetimes (SQLModel stores them as UTC), wall milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def wall_ms() -> int:
    return int(time.time() * 1000)
