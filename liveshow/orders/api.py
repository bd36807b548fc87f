"""GET /api/orders: a buyer's or a seller's orders as JSON for bookkeeping and integrations, newest
first, paged by id (``before``), money in integer cents."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.accounts.models import User
from liveshow.closet.models import Listing
from liveshow.errors import ValidationFailed
from liveshow.orders.models import Order, Payment
from liveshow.orders.money import PAID
from liveshow.shows.models import Show
from liveshow.web.auth import ctx, require_user

MAX_LIMIT = 200
ROLES = ("buyer", "seller")


def _int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValidationFailed(f"{name} must be a whole number from {low} to {high}.")
    return int(raw)


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def order_json(
    order: Order,
    role: str,
    listing: Listing | None,
    show: Show | None,
    people: dict[int, str],
    payment: Payment | None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": order.id,
        "status": order.status,
        "source": order.source,
        "listing": {"id": order.listing_id, "title": listing.title if listing else None},
        "show": {"id": order.show_id, "title": show.title if show else None} if order.show_id else None,
        "lot_id": order.lot_id,
        "unit": order.unit_no,
        "buyer": people.get(order.buyer_id),
        "seller": people.get(order.seller_id),
        "price_cents": order.price_cents,
        # Shipping is charged once per bundle (one payment): count it once per payment_id.
        "payment_id": order.payment_id,
        "bundle_shipping_cents": payment.shipping_cents if payment else 0,
        "refund_status": order.refund_status or None,
        "refunded_cents": order.refunded_cents,
        "carrier": order.carrier or None,
        "tracking_number": order.tracking_number or None,
        "created_at": _iso(order.created_at),
        "pay_by": _iso(order.pay_by),
        "paid_at": _iso(order.paid_at),
        "shipped_at": _iso(order.shipped_at),
        "delivered_at": _iso(order.delivered_at),
        "cancelled_at": _iso(order.cancelled_at),
    }
    if role == "seller":  # the platform's fee is between it and the seller
        row["fee_cents"] = order.fee_cents
        row["net_cents"] = order.price_cents - order.fee_cents if order.status in PAID else 0
    return row


def list_orders(
    session: Session, user_id: int, role: str, limit: int, before: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    who = col(Order.buyer_id) if role == "buyer" else col(Order.seller_id)
    query = select(Order).where(who == user_id)
    if before is not None:
        query = query.where(col(Order.id) < before)
    rows = list(session.exec(query.order_by(col(Order.id).desc()).limit(limit + 1)).all())
    more, rows = len(rows) > limit, rows[:limit]

    def by_id(model: Any, ids: set[Any]) -> dict[Any, Any]:
        ids.discard(None)
        return (
            {x.id: x for x in session.exec(select(model).where(col(model.id).in_(ids))).all()} if ids else {}
        )

    listings = by_id(Listing, {o.listing_id for o in rows})
    shows = by_id(Show, {o.show_id for o in rows})
    users = by_id(User, {o.buyer_id for o in rows} | {o.seller_id for o in rows})
    payments = by_id(Payment, {o.payment_id for o in rows})
    people = {uid: u.username for uid, u in users.items()}
    out = [
        order_json(
            o, role, listings.get(o.listing_id), shows.get(o.show_id), people, payments.get(o.payment_id)
        )
        for o in rows
    ]
    return out, (rows[-1].id if more and rows else None)


async def orders_json(request: Request) -> Response:
    user = await run_in_threadpool(require_user, request)
    role = request.query_params.get("role", "buyer")
    if role not in ROLES:
        raise ValidationFailed("role must be buyer or seller.")
    limit = _int_param(request, "limit", 50, 1, MAX_LIMIT) or 50
    before = _int_param(request, "before", None, 1, 2**62)
    assert user.id is not None
    uid = user.id

    def run() -> tuple[list[dict[str, Any]], int | None]:
        with ctx(request).db.session() as s:
            return list_orders(s, uid, role, limit, before)

    rows, cursor = await run_in_threadpool(run)
    following = f"/api/orders?role={role}&limit={limit}&before={cursor}" if cursor else None
    return JSONResponse({"role": role, "orders": rows, "next": following})


def routes() -> list[BaseRoute]:
    return [Route("/api/orders", orders_json, methods=["GET"], name="orders_json")]
