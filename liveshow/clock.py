"""Time in one place: aware UTC datetimes (SQLModel stores them as UTC), wall milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def wall_ms() -> int:
    return int(time.time() * 1000)


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of a stored UTC moment; drivers hand some back naive (SQLite,
    timestamp without time zone), which here means UTC, never the machine's local time."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return round(aware.timestamp() * 1000)
