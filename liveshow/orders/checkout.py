"""Card checkout, one per bundle: a buyer pays a seller once for all their unpaid wins in a show plus
the seller's shipping fee, and the orders become paid only when the processor's signed webhook says so.

Every state change here is one conditional update committed before the processor is called; the
processor (a port: liveshow.orders.stripe_provider in production) gets idempotency keys derived from
our rows, so two tabs, retries and webhook replays never charge or refund twice."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from liveshow.clock import utcnow
from liveshow.errors import Conflict, Forbidden, NotFound
from liveshow.orders import money, states
from liveshow.orders.models import Order, Payment, ProcessorEvent, SellerPayments
from liveshow.orders.stripe_provider import refund_key


class CardProcessor(Protocol):
    name: str
    currency: str

    def create_intent(
        self, *, payment_id: int, amount_cents: int, fee_cents: int, destination: str, description: str
    ) -> tuple[str, str]: ...

    def refund_amount(self, intent_id: str, amount_cents: int, key: str) -> str: ...


def _bundle_orders(
    session: Session, buyer_id: int, seller_id: int, show_id: int | None, now: datetime
) -> list[Order]:
    query = select(Order).where(
        Order.buyer_id == buyer_id,
        Order.seller_id == seller_id,
        Order.status == "awaiting_payment",
        col(Order.payment_id).is_(None),
        col(Order.pay_by) >= now,
    )
    query = (
        query.where(Order.show_id == show_id)
        if show_id is not None
        else query.where(col(Order.show_id).is_(None))
    )
    return list(session.exec(query.order_by(col(Order.id))).all())


def _open_payment(session: Session, buyer_id: int, seller_id: int, show_id: int | None) -> Payment | None:
    query = select(Payment).where(
        Payment.buyer_id == buyer_id, Payment.seller_id == seller_id, Payment.status == "open"
    )
    query = (
        query.where(Payment.show_id == show_id)
        if show_id is not None
        else query.where(col(Payment.show_id).is_(None))
    )
    for payment in session.exec(query.order_by(col(Payment.id).desc())).all():
        live = session.exec(
            select(Order.id).where(Order.payment_id == payment.id, Order.status == "awaiting_payment")
        ).first()
        if live is not None:
            return payment
    return None


def _shipping_already_charged(session: Session, buyer_id: int, seller_id: int, show_id: int | None) -> bool:
    if show_id is None:
        return False  # outside a show every checkout ships on its own
    return (
        session.exec(
            select(Payment.id).where(
                Payment.buyer_id == buyer_id,
                Payment.seller_id == seller_id,
                Payment.show_id == show_id,
                col(Payment.status).in_(("open", "succeeded")),
                col(Payment.shipping_cents) > 0,
            )
        ).first()
        is not None
    )


def start_checkout(
    session: Session,
    processor: CardProcessor,
    buyer_id: int,
    seller_id: int,
    show_id: int | None,
    fee_bps: int,
    now: datetime | None = None,
) -> Payment:
    """The checkout for this bundle: the open one (same PaymentIntent) or a new one for its unpaid
    orders. The orders are claimed for the payment before the processor is called."""
    now = now or utcnow()
    orders = _bundle_orders(session, buyer_id, seller_id, show_id, now)
    if not orders:
        existing = _open_payment(session, buyer_id, seller_id, show_id)
        if existing is None:
            raise Conflict("Nothing left to pay for here.")
        return _ensure_intent(session, processor, existing)
    account = session.get(SellerPayments, seller_id)
    if account is None or not account.stripe_account:
        raise Conflict("This seller cannot take card payments yet; ask them to connect Stripe.")
    shipping = (
        0 if _shipping_already_charged(session, buyer_id, seller_id, show_id) else account.shipping_cents
    )
    fees = {o.id: money.fee_cents(o.price_cents, fee_bps) for o in orders}
    items = sum(o.price_cents for o in orders)
    payment = Payment(
        buyer_id=buyer_id,
        seller_id=seller_id,
        show_id=show_id,
        provider=processor.name,
        items_cents=items,
        shipping_cents=shipping,
        fee_cents=sum(fees.values()),
        amount_cents=items + shipping,
        currency=processor.currency,
        created_at=now,
    )
    session.add(payment)
    session.flush()
    claimed = 0
    for order in orders:
        result = session.execute(
            update(Order)
            .where(
                col(Order.id) == order.id,
                col(Order.status) == "awaiting_payment",
                col(Order.payment_id).is_(None),
            )
            .values(payment_id=payment.id, fee_cents=fees[order.id])
        )
        claimed += result.rowcount  # type: ignore[attr-defined]
    if claimed != len(orders):
        # Another tab claimed them a moment ago: use its checkout (the same PaymentIntent).
        session.rollback()
        existing = _open_payment(session, buyer_id, seller_id, show_id)
        if existing is None:
            raise Conflict("The order changed meanwhile; reload the page.")
        return _ensure_intent(session, processor, existing)
    session.commit()
    session.refresh(payment)
    return _ensure_intent(session, processor, payment, destination=account.stripe_account)


def _ensure_intent(
    session: Session, processor: CardProcessor, payment: Payment, destination: str | None = None
) -> Payment:
    if payment.intent_id:
        return payment
    if destination is None:
        account = session.get(SellerPayments, payment.seller_id)
        destination = account.stripe_account if account else ""
    assert payment.id is not None
    # The idempotency key is the payment's id: two requests racing here get one PaymentIntent.
    intent_id, secret = processor.create_intent(
        payment_id=payment.id,
        amount_cents=payment.amount_cents,
        fee_cents=payment.fee_cents,
        destination=destination,
        description=f"liveshow checkout {payment.id}",
    )
    session.execute(
        update(Payment)
        .where(col(Payment.id) == payment.id, col(Payment.intent_id).is_(None))
        .values(intent_id=intent_id, client_secret=secret)
    )
    session.commit()
    session.refresh(payment)
    return payment


def payment_for_buyer(session: Session, payment_id: int, buyer_id: int) -> tuple[Payment, list[Order]]:
    payment = session.get(Payment, payment_id)
    if payment is None:
        raise NotFound("No such checkout.")
    if payment.buyer_id != buyer_id:
        raise Forbidden("This checkout is someone else's.")
    orders = list(
        session.exec(select(Order).where(Order.payment_id == payment_id).order_by(col(Order.id))).all()
    )
    return payment, orders


# ---------------------------------------------------------------- webhook events


def apply_event(
    session: Session, processor: CardProcessor, event: dict[str, Any], now: datetime | None = None
) -> str:
    """Apply one verified processor event, once; the outcome in a word (for logs and tests).

    The event's id is stored in the same transaction as its effects, so a replay finds it and changes
    nothing. Out-of-order delivery is safe because every effect is conditional on the current status:
    a failure reported after a success changes nothing; a success after the window closed refunds."""
    now = now or utcnow()
    event_id, kind = str(event.get("id", "")), str(event.get("type", ""))
    obj = (event.get("data") or {}).get("object") or {}
    if not event_id or not isinstance(obj, dict):
        raise ValueError("not an event")
    session.add(ProcessorEvent(id=event_id[:80], kind=kind[:60], received_at=now))
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return "duplicate"
    intent_id = str(obj.get("id", ""))
    payment = (
        session.exec(select(Payment).where(Payment.intent_id == intent_id)).first() if intent_id else None
    )
    if kind not in ("payment_intent.succeeded", "payment_intent.payment_failed") or payment is None:
        session.commit()
        return "ignored"
    if kind == "payment_intent.payment_failed":
        error = obj.get("last_payment_error") or {}
        reason = str(error.get("message") or "The payment failed.")[:200]
        result = session.execute(
            update(Payment)
            .where(col(Payment.id) == payment.id, col(Payment.status) == "open")
            .values(last_error=reason)
        )
        session.commit()
        return "failed" if result.rowcount else "stale"  # type: ignore[attr-defined]
    return _succeeded(session, processor, payment, intent_id, obj, now)


def _succeeded(
    session: Session,
    processor: CardProcessor,
    payment: Payment,
    intent_id: str,
    obj: dict[str, Any],
    now: datetime,
) -> str:
    if int(obj.get("amount_received", obj.get("amount", 0)) or 0) != payment.amount_cents:
        # Never mark goods paid on an amount we did not ask for; keep it for a person to look at.
        session.execute(
            update(Payment).where(col(Payment.id) == payment.id).values(last_error="amount mismatch")
        )
        session.commit()
        return "mismatch"
    result = session.execute(
        update(Payment)
        .where(col(Payment.id) == payment.id, col(Payment.status) == "open")
        .values(status="succeeded", paid_at=now, last_error="")
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.commit()
        return "stale"
    orders = list(session.exec(select(Order.id).where(Order.payment_id == payment.id)).all())
    froms = states.sources("confirm_paid", "system")
    paid = 0
    for order_id in orders:
        moved = session.execute(
            update(Order)
            .where(col(Order.id) == order_id, col(Order.status).in_(froms))
            .values(status="paid", paid_at=now, payment_ref=intent_id[:80])
        )
        paid += moved.rowcount  # type: ignore[attr-defined]
    # Orders cancelled before the money arrived (window closed, buyer cancelled) are given back; read
    # after the updates above, so one cancelled meanwhile is seen here.
    late = list(
        session.exec(
            select(Order).where(
                Order.payment_id == payment.id, Order.status == "cancelled", Order.refund_status == ""
            )
        ).all()
    )
    for order in late:
        session.execute(
            update(Order)
            .where(col(Order.id) == order.id, col(Order.refund_status) == "")
            .values(refund_status="pending", payment_ref=intent_id[:80])
        )
    session.commit()
    for order in late:
        session.refresh(order)
        # Nothing of the bundle is sold: the shipping goes back with the last item.
        extra = payment.shipping_cents if paid == 0 and order is late[-1] else 0
        refund_late_order(session, processor, order, intent_id, order.price_cents + extra)
    return "paid" if paid else "refunded"


def refund_late_order(
    session: Session, processor: CardProcessor, order: Order, intent_id: str, amount: int
) -> None:
    try:
        ref = processor.refund_amount(intent_id, amount, refund_key(order))
    except Exception:
        status, values = "failed", {}
    else:
        status, values = "refunded", {"refunded_cents": amount, "refund_ref": ref[:80]}
    session.execute(
        update(Order)
        .where(col(Order.id) == order.id, col(Order.refund_status) == "pending")
        .values(refund_status=status, **values)
    )
    session.commit()
