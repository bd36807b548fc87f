"""Seller analytics per show, from the archived show events, the viewer samples and the orders."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from liveshow.showlog import archived_events
from liveshow.shows.models import Show
from liveshow.social.models import ViewerSample


@dataclass
class ShowStats:
    show_id: int
    title: str
    started: datetime | None
    viewers: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, viewers)
    peak_viewers: int = 0
    items_shown: int = 0
    claims: int = 0
    bids: int = 0
    sales: int = 0
    revenue_cents: int = 0
    buyers: int = 0
    revenue: list[tuple[float, int]] = field(default_factory=list)  # cumulative cents over time

    @property
    def conversion(self) -> float:
        """Share of the peak audience that bought something, in percent."""
        return round(100 * self.buyers / self.peak_viewers, 1) if self.peak_viewers else 0.0


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _listing_of(data: dict[str, object]) -> object:
    lot = data.get("lot")
    return lot.get("listing_id") if isinstance(lot, dict) else data.get("listing_id")


def _orders(session: Session, show_id: int) -> list[tuple[datetime, int, int]]:
    """(created_at, price_cents, buyer_id) of the show's orders that were not cancelled."""
    try:
        models = importlib.import_module("liveshow.orders.models")
    except ModuleNotFoundError:
        return []
    order = models.Order
    rows = session.exec(
        select(order)
        .where(order.show_id == show_id, col(order.status) != "cancelled")
        .order_by(order.created_at)
    )
    return [(_aware(o.created_at), int(o.price_cents), int(o.buyer_id)) for o in rows]


def show_stats(session: Session, show: Show) -> ShowStats:
    assert show.id is not None
    events = archived_events(session, show.id, 0, limit=200_000)
    start = show.went_live_at or (events[0].at if events else None)
    start = _aware(start) if start else None
    stats = ShowStats(show.id, show.title, start)
    shown: set[object] = set()
    event_sales: list[tuple[datetime, int, int]] = []
    for event in events:
        data = json.loads(event.data)
        if event.type == "lot.opened":
            shown.add(_listing_of(data))
        elif event.type == "claim.accepted":
            stats.claims += 1
        elif event.type == "bid.accepted":
            stats.bids += 1
        elif event.type == "lot.closed" and data.get("outcome") == "sold":
            buyer = data.get("winner_id") or data.get("buyer_id") or 0
            price = data.get("price_cents") or 0
            event_sales.append((_aware(event.at), int(price), int(buyer)))
    stats.items_shown = len(shown - {None})
    # Orders are the truth for sales; the lot.closed events stand in where no order service runs.
    sales = _orders(session, show.id) or event_sales
    stats.sales = len(sales)
    stats.revenue_cents = sum(p for _, p, _ in sales)
    stats.buyers = len({b for _, _, b in sales if b})
    samples = session.exec(
        select(ViewerSample).where(ViewerSample.show_id == show.id).order_by(col(ViewerSample.at))
    ).all()
    origin = start or (_aware(samples[0].at) if samples else None)
    if origin is not None:
        stats.viewers = [((_aware(s.at) - origin).total_seconds(), s.viewers) for s in samples]
        total = 0
        for at, price, _ in sales:
            total += price
            stats.revenue.append(((at - origin).total_seconds(), total))
    stats.peak_viewers = max((v for _, v in stats.viewers), default=0)
    return stats


def seller_shows(session: Session, seller_id: int, limit: int = 20) -> list[Show]:
    rows = session.exec(
        select(Show)
        .where(Show.seller_id == seller_id, col(Show.state).in_(["live", "ended"]))
        .order_by(col(Show.starts_at).desc())
        .limit(limit)
    )
    return list(rows)
