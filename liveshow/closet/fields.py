"""Input checks shared by forms and the JSON API: each returns a clean value or raises ValidationFailed.

Values arrive either as form strings or as JSON values, so every check accepts both and refuses the
wrong JSON type (a list where a title belongs, a bool where a number belongs) with a clear message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from liveshow import usertext
from liveshow.errors import ValidationFailed

MAX_PRICE_CENTS = 10_000_000  # $100,000: beyond that a typo is likelier than a sale
_PRICE = re.compile(r"^\$?\s*(\d{1,3}(,\d{3})+|\d+)(\.\d{0,2})?$")


def text(
    raw: Any, label: str, max_len: int, *, required: bool = False, multiline: bool = False, name: bool = False
) -> str:
    """Cleaned by the one cleaner of user-visible text (liveshow.usertext): controls and bidi
    overrides removed, normalised, whitespace collapsed, then checked against ``max_len``."""
    return usertext.field(raw, label, max_len, required=required, multiline=multiline, name=name)


def choice(raw: Any, label: str, options: Sequence[str], default: str | None = None) -> str:
    if (raw is None or raw == "") and default is not None:
        return default
    if not isinstance(raw, str) or raw.strip().lower() not in options:
        raise ValidationFailed(f"{label}: one of {', '.join(options)}.")
    return raw.strip().lower()


def integer(raw: Any, label: str, low: int, high: int) -> int:
    if isinstance(raw, bool):
        raise ValidationFailed(f"{label}: must be a whole number.")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and re.fullmatch(r"\s*-?\d{1,12}\s*", raw):
        value = int(raw)
    else:
        raise ValidationFailed(f"{label}: must be a whole number.")
    if not low <= value <= high:
        raise ValidationFailed(f"{label}: from {low} to {high}.")
    return value


def price_text_to_cents(raw: Any, label: str = "Price") -> int:
    """Dollars as people type them ("12.50", "$1,200", "3") to exact cents; never through a float."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationFailed(f"{label}: enter an amount like 12.50.")
    value = raw.strip()
    if not _PRICE.fullmatch(value):
        raise ValidationFailed(f"{label}: enter an amount like 12.50 (dollars and at most two decimals).")
    try:
        cents = int(Decimal(value.lstrip("$").strip().replace(",", "")) * 100)
    except InvalidOperation as exc:  # the pattern makes this unreachable; keep the message honest anyway
        raise ValidationFailed(f"{label}: enter an amount like 12.50.") from exc
    return cents_in_range(cents, label)


def cents(raw: Any, label: str = "Price") -> int:
    """Integer cents from the JSON API."""
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValidationFailed(f"{label}: integer cents, e.g. 1250 for $12.50.")
    return cents_in_range(raw, label)


def cents_in_range(value: int, label: str) -> int:
    if value <= 0:
        raise ValidationFailed(f"{label}: must be more than $0.")
    if value > MAX_PRICE_CENTS:
        raise ValidationFailed(f"{label}: at most ${MAX_PRICE_CENTS // 100:,}.")
    return value


def id_list(raw: Any, label: str, max_items: int) -> list[int]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValidationFailed(f"{label}: a list of ids.")
    if len(raw) > max_items:
        raise ValidationFailed(f"{label}: at most {max_items}.")
    ids = [integer(item, label, 1, 2**62) for item in raw]
    if len(set(ids)) != len(ids):
        raise ValidationFailed(f"{label}: an item appears twice.")
    return ids


def when(raw: Any, label: str, tz_offset_minutes: int = 0) -> datetime:
    """An ISO 8601 time. Without an offset it is local time of the form (tz_offset_minutes as JS
    getTimezoneOffset() gives it: UTC minus local), or UTC for API callers."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationFailed(f"{label}: an ISO 8601 date and time, e.g. 2030-05-01T18:00:00Z.")
    value = raw.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValidationFailed(f"{label}: an ISO 8601 date and time, e.g. 2030-05-01T18:00:00Z.") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC) + timedelta(minutes=tz_offset_minutes)
    return parsed.astimezone(UTC)
