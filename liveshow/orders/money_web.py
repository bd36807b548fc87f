"""/orders/money: a seller's sales, fees, net and payouts per show, as a page and as CSV, and their
payment settings (shipping fee per bundle, Stripe connected account)."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.clock import utcnow
from liveshow.errors import NotFound, ValidationFailed
from liveshow.orders.models import Order, Payment, SellerPayments
from liveshow.orders.money import PAID, Line, ShowFigures, figures_by_show, total
from liveshow.shows.models import Show
from liveshow.web.auth import check_csrf, ctx, require_user
from liveshow.web.rendering import render

ACCOUNT = re.compile(r"acct_[A-Za-z0-9]{1,60}")
MAX_SHIPPING_CENTS = 100_000


def seller_figures(session: Session, seller_id: int) -> tuple[list[ShowFigures], dict[int, str]]:
    orders = session.exec(select(Order).where(Order.seller_id == seller_id).order_by(col(Order.id))).all()
    # Shipping counts once per payment that still paid for something.
    paid_payments = {o.payment_id for o in orders if o.status in PAID and o.payment_id is not None}
    shipping: dict[int | None, int] = {}
    if paid_payments:
        for p in session.exec(select(Payment).where(col(Payment.id).in_(paid_payments))).all():
            shipping[p.show_id] = shipping.get(p.show_id, 0) + p.shipping_cents
    lines = [Line(o.show_id, o.status, o.price_cents, o.fee_cents, o.refunded_cents) for o in orders]
    figures = figures_by_show(lines, shipping)
    show_ids = {f.show_id for f in figures if f.show_id is not None}
    titles = (
        {s.id: s.title for s in session.exec(select(Show).where(col(Show.id).in_(show_ids))).all() if s.id}
        if show_ids
        else {}
    )
    return figures, titles


def _cents(value: int) -> str:
    return f"{value / 100:.2f}"


def _data(request: Request, seller_id: int) -> dict[str, Any]:
    with ctx(request).db.session() as s:
        figures, titles = seller_figures(s, seller_id)
        account = s.get(SellerPayments, seller_id) or SellerPayments(seller_id=seller_id)
        return {"figures": figures, "titles": titles, "total": total(figures), "account": account}


async def money_page(request: Request) -> Response:
    user = await run_in_threadpool(require_user, request)
    assert user.id is not None
    data = await run_in_threadpool(_data, request, user.id)
    return render(request, "money.html", payments=ctx(request).payments, **data)


async def money_csv(request: Request) -> Response:
    user = await run_in_threadpool(require_user, request)
    assert user.id is not None
    data = await run_in_threadpool(_data, request, user.id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["show_id", "show", "orders", "sales", "fees", "shipping", "net", "refunded", "unpaid"])
    rows: list[tuple[ShowFigures, str]] = [(f, data["titles"].get(f.show_id, "")) for f in data["figures"]]
    for f, title in [*rows, (data["total"], "TOTAL")]:
        writer.writerow(
            [
                "" if f.show_id is None else f.show_id,
                title if f.show_id is not None or title == "TOTAL" else "outside a show",
                f.orders,
                *(_cents(v) for v in (f.sales_cents, f.fees_cents, f.shipping_cents, f.net_cents)),
                _cents(f.refunded_cents),
                _cents(f.pending_cents),
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="liveshow-sales.csv"'},
    )


def parse_settings(shipping: str, account: str) -> tuple[int, str]:
    """Shipping as dollars and cents ("4.50"), the Stripe account as acct_...; ValidationFailed else."""
    shipping, account = shipping.strip() or "0", account.strip()
    match = re.fullmatch(r"(\d{1,4})(?:\.(\d{1,2}))?", shipping)
    if match is None:
        raise ValidationFailed("Shipping must be an amount like 4.50.")
    cents = int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
    if cents > MAX_SHIPPING_CENTS:
        raise ValidationFailed("Shipping must be at most 1000.00.")
    if account and not ACCOUNT.fullmatch(account):
        raise ValidationFailed("A Stripe connected account id looks like acct_1A2b3C.")
    return cents, account


async def money_settings(request: Request) -> Response:
    user = await run_in_threadpool(require_user, request)
    await check_csrf(request)
    form = await request.form()
    cents, account = parse_settings(str(form.get("shipping") or ""), str(form.get("stripe_account") or ""))
    assert user.id is not None
    uid = user.id

    def run() -> None:
        with ctx(request).db.session() as s:
            row = s.get(SellerPayments, uid) or SellerPayments(seller_id=uid)
            row.shipping_cents, row.stripe_account, row.updated_at = cents, account, utcnow()
            s.add(row)
            s.commit()

    await run_in_threadpool(run)
    return RedirectResponse("/orders/money", status_code=303)


async def stripe_connect(request: Request) -> Response:
    """Send the seller to Stripe's onboarding for their connected account, creating it the first time."""
    from liveshow.orders.stripe_provider import StripeProvider

    user = await run_in_threadpool(require_user, request)
    await check_csrf(request)
    provider = ctx(request).payments
    if not isinstance(provider, StripeProvider):
        raise NotFound("Card payments are not configured on this server.")
    assert user.id is not None
    uid = user.id
    back = (ctx(request).settings.public_url or str(request.base_url)).rstrip("/") + "/orders/money"

    def run() -> str:
        with ctx(request).db.session() as s:
            row = s.get(SellerPayments, uid)
            if row is not None and row.stripe_account:
                return row.stripe_account
        account = provider.create_account(uid)  # outside the session: a network call
        with ctx(request).db.session() as s:
            row = s.get(SellerPayments, uid) or SellerPayments(seller_id=uid)
            if not row.stripe_account:
                row.stripe_account, row.updated_at = account, utcnow()
                s.add(row)
                s.commit()
            return row.stripe_account

    account = await run_in_threadpool(run)
    url = await run_in_threadpool(provider.onboarding_link, account, back)
    return RedirectResponse(url, status_code=303)


def routes() -> list[BaseRoute]:
    return [
        Route("/orders/money", money_page, name="money"),
        Route("/orders/money.csv", money_csv, name="money_csv"),
        Route("/orders/money/settings", money_settings, methods=["POST"], name="money_settings"),
        Route("/orders/money/stripe-connect", stripe_connect, methods=["POST"], name="stripe_connect"),
    ]
