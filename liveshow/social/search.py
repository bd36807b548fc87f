"""Search across listings, sellers and shows, with filters. Input is bounded and LIKE-escaped."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, or_
from sqlmodel import Session, col, select

from liveshow.accounts.models import User
from liveshow.closet.models import CATEGORIES, Listing
from liveshow.errors import ValidationFailed
from liveshow.shows.models import Show

MAX_QUERY = 100
MAX_TERMS = 8
MAX_LIMIT = 50
MAX_OFFSET = 1000
MAX_PRICE_CENTS = 100_000_000


@dataclass(frozen=True)
class Query:
    text: str = ""
    size: str = ""
    brand: str = ""
    category: str = ""
    min_cents: int | None = None
    max_cents: int | None = None
    limit: int = 24
    offset: int = 0
    terms: tuple[str, ...] = field(default=())


def _price(raw: str, name: str) -> int | None:
    if not raw.strip():
        return None
    try:
        value = Decimal(raw.strip())
    except InvalidOperation as exc:
        raise ValidationFailed(f"{name} must be an amount like 25 or 25.50.") from exc
    if not value.is_finite() or value < 0 or value * 100 != (value * 100).to_integral_value():
        raise ValidationFailed(f"{name} must be a positive amount in dollars and cents.")
    cents = int(value * 100)
    if cents > MAX_PRICE_CENTS:
        raise ValidationFailed(f"{name} is too large.")
    return cents


def _int(raw: str, name: str, default: int, high: int) -> int:
    if not raw:
        return default
    if not raw.isdigit() or len(raw) > 6:
        raise ValidationFailed(f"{name} must be a whole number.")
    value = int(raw)
    if value > high:
        raise ValidationFailed(f"{name} must be at most {high}.")
    return value


def parse(params: dict[str, str]) -> Query:
    """Validate query-string parameters (q, size, brand, category, min_price, max_price, limit, offset)."""
    text = " ".join(params.get("q", "").split())
    if len(text) > MAX_QUERY:
        raise ValidationFailed(f"Search text: at most {MAX_QUERY} characters.")
    terms = tuple(dict.fromkeys(t.lower() for t in text.split()))[:MAX_TERMS]
    size, brand = params.get("size", "").strip(), params.get("brand", "").strip()
    if len(size) > 20 or len(brand) > 60:
        raise ValidationFailed("Size: at most 20 characters; brand: at most 60.")
    category = params.get("category", "").strip().lower()
    if category and category not in CATEGORIES:
        raise ValidationFailed(f"Category must be one of: {', '.join(CATEGORIES)}.")
    low, high = (
        _price(params.get("min_price", ""), "min_price"),
        _price(params.get("max_price", ""), "max_price"),
    )
    if low is not None and high is not None and low > high:
        raise ValidationFailed("min_price is above max_price.")
    return Query(
        text=text,
        size=size,
        brand=brand,
        category=category,
        min_cents=low,
        max_cents=high,
        limit=max(1, _int(params.get("limit", ""), "limit", 24, MAX_LIMIT)),
        offset=_int(params.get("offset", ""), "offset", 0, MAX_OFFSET),
        terms=terms,
    )


def like_pattern(term: str) -> str:
    """A LIKE pattern matching ``term`` literally anywhere: %, _ and the escape itself are escaped."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(column: Any, term: str) -> ColumnElement[bool]:
    result: ColumnElement[bool] = col(column).ilike(like_pattern(term), escape="\\")
    return result


def listings(session: Session, q: Query) -> list[Listing]:
    stmt = select(Listing).where(Listing.status == "available")
    for term in q.terms:
        stmt = stmt.where(
            or_(
                _contains(Listing.title, term),
                _contains(Listing.brand, term),
                _contains(Listing.description, term),
            )
        )
    if q.size:
        stmt = stmt.where(col(Listing.size).ilike(like_pattern(q.size)[1:-1], escape="\\"))
    if q.brand:
        stmt = stmt.where(_contains(Listing.brand, q.brand))
    if q.category:
        stmt = stmt.where(Listing.category == q.category)
    if q.min_cents is not None:
        stmt = stmt.where(col(Listing.price_cents) >= q.min_cents)
    if q.max_cents is not None:
        stmt = stmt.where(col(Listing.price_cents) <= q.max_cents)
    stmt = (
        stmt.order_by(col(Listing.created_at).desc(), col(Listing.id).desc()).offset(q.offset).limit(q.limit)
    )
    return list(session.exec(stmt))


def sellers(session: Session, q: Query, limit: int = 10) -> list[User]:
    if not q.terms:
        return []
    stmt = select(User).where(col(User.is_active).is_(True))
    for term in q.terms:
        stmt = stmt.where(or_(_contains(User.username, term), _contains(User.display_name, term)))
    return list(session.exec(stmt.order_by(col(User.username)).limit(limit)))


def shows(session: Session, q: Query, limit: int = 10) -> dict[str, list[Show]]:
    """Public shows matching the text (title or seller), grouped live / upcoming / replays."""
    groups: dict[str, list[Show]] = {"live": [], "upcoming": [], "replays": []}
    if not q.terms:
        return groups
    stmt = select(Show).join(User, col(User.id) == col(Show.seller_id)).where(Show.visibility == "public")
    for term in q.terms:
        stmt = stmt.where(
            or_(
                _contains(Show.title, term),
                _contains(User.username, term),
                _contains(User.display_name, term),
            )
        )
    names = {"live": "live", "scheduled": "upcoming", "ended": "replays"}
    for state, key in names.items():
        order = col(Show.starts_at).asc() if state == "scheduled" else col(Show.starts_at).desc()
        groups[key] = list(session.exec(stmt.where(Show.state == state).order_by(order).limit(limit)))
    return groups


def listing_json(listing: Listing) -> dict[str, Any]:
    return {
        "id": listing.id,
        "seller_id": listing.seller_id,
        "title": listing.title,
        "brand": listing.brand,
        "size": listing.size,
        "category": listing.category,
        "price_cents": listing.price_cents,
        "url": f"/listings/{listing.id}",
    }


def search_all(session: Session, q: Query) -> dict[str, Any]:
    found_shows = shows(session, q)
    return {
        "query": q.text,
        "listings": [listing_json(x) for x in listings(session, q)],
        "sellers": [
            {
                "id": u.id,
                "username": u.username,
                "display_name": u.display_name,
                "url": f"/closet/{u.username}",
            }
            for u in sellers(session, q)
        ],
        "shows": {
            key: [{"id": s.id, "title": s.title, "state": s.state, "url": f"/shows/{s.id}"} for s in group]
            for key, group in found_shows.items()
        },
    }
