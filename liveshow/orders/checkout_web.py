"""Card checkout pages and the processor's webhook: handlers that decode, call checkout, encode."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.errors import NotFound, ValidationFailed
from liveshow.orders import checkout
from liveshow.orders.stripe_provider import StripeProvider, verify_event
from liveshow.web.auth import check_csrf, ctx, require_user
from liveshow.web.rendering import render

log = logging.getLogger(__name__)
MAX_EVENT_BYTES = 256 * 1024


def _stripe(request: Request) -> StripeProvider:
    provider = ctx(request).payments
    if not isinstance(provider, StripeProvider):
        raise NotFound("Card payments are not configured on this server.")
    return provider


def _form_int(form: Any, name: str, required: bool) -> int | None:
    raw = str(form.get(name) or "").strip()
    if not raw:
        if required:
            raise ValidationFailed(f"{name} is missing.")
        return None
    if not raw.isdigit():
        raise ValidationFailed(f"{name} must be a number.")
    return int(raw)


async def start(request: Request) -> Response:
    user = await run_in_threadpool(require_user, request)
    await check_csrf(request)
    processor = _stripe(request)
    form = await request.form()
    seller_id = _form_int(form, "seller_id", True) or 0
    show_id = _form_int(form, "show_id", False)
    context = ctx(request)
    assert user.id is not None
    buyer = user.id

    def run() -> int:
        with context.db.session() as s:
            payment = checkout.start_checkout(
                s, processor, buyer, seller_id, show_id, context.settings.platform_fee_bps
            )
            assert payment.id is not None
            return payment.id

    payment_id = await run_in_threadpool(run)
    return RedirectResponse(f"/orders/checkout/{payment_id}", status_code=303)


async def page(request: Request) -> Response:
    user = await run_in_threadpool(require_user, request)
    processor = _stripe(request)
    assert user.id is not None
    uid = user.id

    def run() -> Any:
        with ctx(request).db.session() as s:
            return checkout.payment_for_buyer(s, int(request.path_params["payment_id"]), uid)

    payment, orders = await run_in_threadpool(run)
    return render(
        request,
        "checkout.html",
        payment=payment,
        orders=orders,
        publishable_key=processor.publishable_key,
    )


async def webhook(request: Request) -> Response:
    """Stripe's signed events. A bad signature or an old timestamp: 400 and nothing applied."""
    processor = _stripe(request)
    body = await request.body()
    if len(body) > MAX_EVENT_BYTES:
        return JSONResponse({"error": "too_large", "reason": "Event too large."}, status_code=413)
    try:
        verify_event(body, request.headers.get("stripe-signature"), processor.webhook_secret)
    except Exception as exc:  # stripe.SignatureVerificationError, or a header we cannot parse
        log.warning("stripe webhook refused: %s", exc)
        return JSONResponse({"error": "bad_signature", "reason": "Signature check failed."}, status_code=400)
    try:
        event = json.loads(body)
        if not isinstance(event, dict):
            raise ValueError("not an object")
    except ValueError:
        return JSONResponse({"error": "invalid", "reason": "The body is not a JSON event."}, status_code=400)
    context = ctx(request)

    def run() -> str:
        with context.db.session() as s:
            return checkout.apply_event(s, processor, event)

    try:
        outcome = await run_in_threadpool(run)
    except ValueError as exc:
        return JSONResponse({"error": "invalid", "reason": str(exc)}, status_code=400)
    log.info("stripe event %s %s: %s", event.get("id"), event.get("type"), outcome)
    return JSONResponse({"received": True, "outcome": outcome})


def routes() -> list[BaseRoute]:
    return [
        Route("/orders/checkout", start, methods=["POST"], name="checkout_start"),
        Route("/orders/checkout/{payment_id:int}", page, name="checkout_page"),
        Route("/webhooks/stripe", webhook, methods=["POST"], name="stripe_webhook"),
    ]
