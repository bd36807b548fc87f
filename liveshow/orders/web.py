"""/orders: a buyer's orders and a seller's sales (bundled per buyer per show), and their actions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.accounts.models import User
from liveshow.closet.models import Listing
from liveshow.errors import Conflict, NotFound
from liveshow.orders import service
from liveshow.orders.models import Order, SecondChanceOffer
from liveshow.orders.providers import ManualProvider, PaymentProvider
from liveshow.shows.models import Show
from liveshow.web.auth import check_csrf, ctx, require_user
from liveshow.web.rendering import render


def _rows(request: Request, user: User) -> dict[str, Any]:
    with ctx(request).db.session() as s:
        bought = s.exec(select(Order).where(Order.buyer_id == user.id).order_by(col(Order.id).desc())).all()
        sold = s.exec(select(Order).where(Order.seller_id == user.id).order_by(col(Order.id).desc())).all()
        offers = s.exec(
            select(SecondChanceOffer).where(
                SecondChanceOffer.buyer_id == user.id, SecondChanceOffer.status == "open"
            )
        ).all()
        listing_ids = {o.listing_id for o in [*bought, *sold]} | {o.listing_id for o in offers}
        listings = (
            {x.id: x for x in s.exec(select(Listing).where(col(Listing.id).in_(listing_ids))).all()}
            if listing_ids
            else {}
        )
        user_ids = {o.buyer_id for o in sold} | {o.seller_id for o in bought}
        users = (
            {u.id: u for u in s.exec(select(User).where(col(User.id).in_(user_ids))).all()}
            if user_ids
            else {}
        )
        show_ids = {o.show_id for o in [*bought, *sold] if o.show_id}
        shows = (
            {x.id: x for x in s.exec(select(Show).where(col(Show.id).in_(show_ids))).all()}
            if show_ids
            else {}
        )
    unpaid: dict[tuple[int, int | None], list[Order]] = defaultdict(list)
    for order in bought:
        if order.status == "awaiting_payment":
            unpaid[(order.seller_id, order.show_id)].append(order)
    bundles: dict[tuple[int, int | None], list[Order]] = defaultdict(list)
    for order in sold:
        bundles[(order.buyer_id, order.show_id)].append(order)
    return {
        "bought": bought,
        "offers": offers,
        "listings": listings,
        "users": users,
        "shows": shows,
        # A card checkout pays a whole bundle (a seller's wins in one show) at once.
        "to_pay": [
            {
                "seller_id": seller_id,
                "seller": users.get(seller_id),
                "show_id": show_id,
                "show": shows.get(show_id) if show_id else None,
                "orders": orders,
                "total_cents": sum(o.price_cents for o in orders),
            }
            for (seller_id, show_id), orders in unpaid.items()
        ],
        "bundles": [
            {
                "buyer": users.get(buyer),
                "show": shows.get(show_id) if show_id else None,
                "orders": orders,
                "total_cents": sum(o.price_cents for o in orders if o.status != "cancelled"),
            }
            for (buyer, show_id), orders in bundles.items()
        ],
    }


def provider(request: Request) -> PaymentProvider:
    return ctx(request).payments or ManualProvider()


async def orders_page(request: Request) -> Response:
    user = await run_in_threadpool(require_user, request)
    rows = await run_in_threadpool(_rows, request, user)
    return render(request, "orders.html", user=user, payments=provider(request), **rows)


def _order_action(lot_bids: service.LotBids) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of an order's actions; ``lot_bids`` says who a declined or lapsed second-chance
    offer goes to next (the auction's bids: orders does not read them itself)."""

    async def order_action(request: Request) -> Response:
        user = await run_in_threadpool(require_user, request)
        await check_csrf(request)
        form = await request.form()
        action = request.path_params["action"]
        target = int(request.path_params["order_id"])
        context = ctx(request)
        assert user.id is not None
        uid = user.id
        payments = provider(request)
        carrier, tracking = str(form.get("carrier") or ""), str(form.get("tracking_number") or "")

        def run() -> None:
            with context.db.session() as s:
                window = context.settings.payment_window_minutes
                if action == "pay":
                    service.pay(s, target, uid, payments, fee_bps=context.settings.platform_fee_bps)
                elif action == "confirm-paid":
                    if payments.name != "manual":
                        raise Conflict(f"Payments go through {payments.name}; it confirms them.")
                    service.confirm_paid(s, target, uid)
                elif action == "ship":
                    service.mark_shipped(s, target, uid, carrier=carrier, tracking_number=tracking)
                elif action == "deliver":
                    service.mark_delivered(s, target, uid)
                elif action == "cancel":
                    service.cancel(s, target, uid, payments)
                elif action == "retry-refund":
                    service.retry_refund(s, target, uid, payments)
                elif action == "accept-offer":
                    service.accept_second_chance(s, target, uid, lot_bids, window_minutes=window)
                elif action == "decline-offer":
                    service.decline_second_chance(s, target, uid, lot_bids, window_minutes=window)
                else:
                    raise NotFound("No such action.")

        await run_in_threadpool(run)
        return RedirectResponse("/orders", status_code=303)

    return order_action


def routes(lot_bids: service.LotBids) -> list[BaseRoute]:
    return [
        Route("/orders", orders_page, name="orders"),
        Route(
            "/orders/{order_id:int}/{action}", _order_action(lot_bids), methods=["POST"], name="order_action"
        ),
    ]
