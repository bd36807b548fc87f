"""Order operations, synchronous; callers hold the session. Any feature that sells something (claims,
auctions, accepted offers, giveaways) goes through ``create_order`` and so through the same unit fence."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from liveshow.clock import utcnow
from liveshow.closet.models import Listing
from liveshow.errors import Conflict, Forbidden, NotFound, ValidationFailed
from liveshow.orders import money, states
from liveshow.orders.errors import SoldOut
from liveshow.orders.models import Order, SecondChanceOffer
from liveshow.orders.providers import PaymentProvider

SOURCES = ("claim", "auction", "second_chance", "offer", "giveaway", "replay")
# The accepted bids of an auction lot, best first (highest maximum, then the earlier), as (bidder id,
# maximum in cents): who an unpaid win is offered to next. The auction's tables say it, so the auction
# hands this in (auction/lot_bids.py) rather than orders reading them.
LotBids = Callable[[Session, int], list[tuple[int, int]]]


def live_units(session: Session, listing_id: int) -> set[int]:
    rows = session.exec(
        select(Order.unit_no).where(Order.listing_id == listing_id, Order.status != "cancelled")
    ).all()
    return set(rows)


def refresh_sold_count(session: Session, listing_id: int) -> None:
    """sold_count follows the live orders (the source of truth), never a running tally."""
    live = (
        select(func.count())
        .select_from(Order)
        .where(col(Order.listing_id) == listing_id, col(Order.status) != "cancelled")
        .scalar_subquery()
    )
    session.execute(
        update(Listing).where(col(Listing.id) == listing_id).values(sold_count=live, updated_at=utcnow())
    )
    listing = session.get(Listing, listing_id)
    if listing is not None:
        session.refresh(listing)
        listing.status = "sold" if listing.sold_count >= listing.quantity else "available"
        session.add(listing)


def create_order(
    session: Session,
    buyer_id: int,
    listing_id: int,
    price_cents: int,
    source: str,
    show_id: int | None = None,
    lot_id: int | None = None,
    now: datetime | None = None,
    payment_window_minutes: int = 15,
    commit: bool = True,
) -> Order:
    """An order for the lowest free unit of the listing; SoldOut when none is free.

    The unit is taken under the partial unique index, so two processes racing for the last unit get
    one order and one SoldOut, whatever each believed before.
    """
    if source not in SOURCES:
        raise ValidationFailed(f"Unknown order source {source!r}.")
    # A giveaway prize is the one order that costs nothing; every sale has a positive price.
    lowest = 0 if source == "giveaway" else 1
    if isinstance(price_cents, bool) or not isinstance(price_cents, int) or price_cents < lowest:
        raise ValidationFailed("The price must be a positive whole number of cents.")
    now = now or utcnow()
    for _attempt in range(3):
        listing = session.get(Listing, listing_id)
        if listing is None:
            raise NotFound("No such listing.")
        if listing.seller_id == buyer_id:
            raise Forbidden("You cannot buy your own item.")
        taken = live_units(session, listing_id)
        free = [u for u in range(1, listing.quantity + 1) if u not in taken]
        if not free:
            raise SoldOut("Sold out.")
        order = Order(
            buyer_id=buyer_id,
            seller_id=listing.seller_id,
            listing_id=listing_id,
            unit_no=free[0],
            price_cents=price_cents,
            source=source,
            show_id=show_id,
            lot_id=lot_id,
            created_at=now,
            pay_by=now + timedelta(minutes=payment_window_minutes),
        )
        if price_cents == 0:
            # Nothing to pay: it must not wait for a payment and be cancelled by the sweeper.
            order.status, order.paid_at, order.payment_ref = "paid", now, "free"
        try:
            with session.begin_nested():
                session.add(order)
                session.flush()
        except IntegrityError:
            session.expire_all()
            continue  # another process took that unit a moment ago: look again
        refresh_sold_count(session, listing_id)
        if commit:
            session.commit()
        return order
    raise SoldOut("Sold out.")


def _order_for(session: Session, order_id: int) -> Order:
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound("No such order.")
    return order


def _move(
    session: Session,
    order: Order,
    action: str,
    role: states.Role,
    *,
    also: tuple[ColumnElement[bool], ...] = (),
    **values: object,
) -> Order:
    """One conditional update from the status this caller read: a sweeper, a second tab or a webhook
    acting at the same moment finds the row changed and gets a Conflict instead of acting twice.
    Made (and committed) before any processor call that depends on it."""
    move = states.check(action, role, order.status)
    result = session.execute(
        update(Order)
        .where(col(Order.id) == order.id, col(Order.status) == order.status, *also)
        .values(status=move.to, **values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise Conflict("The order changed meanwhile; reload the page.")
    session.commit()
    session.refresh(order)
    return order


def pay(
    session: Session,
    order_id: int,
    user_id: int,
    provider: PaymentProvider,
    now: datetime | None = None,
    fee_bps: int = 0,
) -> Order:
    """Charge through a synchronous provider. The order moves to "paying" first, so of two clicks only
    one reaches the provider; a refused charge puts it back to awaiting payment."""
    now = now or utcnow()
    order = _order_for(session, order_id)
    if order.buyer_id != user_id:
        raise Forbidden("Only the buyer pays for an order.")
    states.check("pay", "buyer", order.status)
    if now > order.pay_by:
        raise Conflict("The payment window has closed.")
    # The window is part of the condition: the sweeper may cancel the order between our read and now.
    _move(session, order, "pay", "buyer", also=(col(Order.pay_by) >= now,))
    try:
        ref = provider.charge(order)
    except Exception:
        _move(session, order, "charge_failed", "system")
        raise
    fee = money.fee_cents(order.price_cents, fee_bps)
    return _move(session, order, "charged", "system", paid_at=now, payment_ref=ref[:80], fee_cents=fee)


def confirm_paid(
    session: Session, order_id: int, user_id: int, ref: str = "manual", now: datetime | None = None
) -> Order:
    """The seller says they were paid outside liveshow (the manual provider: cash at pickup...)."""
    order = _order_for(session, order_id)
    if order.seller_id != user_id:
        raise Forbidden("Only the seller confirms a payment they received.")
    return _move(session, order, "confirm_paid", "seller", paid_at=now or utcnow(), payment_ref=ref[:80])


def mark_shipped(
    session: Session,
    order_id: int,
    user_id: int,
    now: datetime | None = None,
    carrier: str = "",
    tracking_number: str = "",
) -> Order:
    order = _order_for(session, order_id)
    if order.seller_id != user_id:
        raise Forbidden("Only the seller ships an order.")
    carrier, tracking_number = carrier.strip(), tracking_number.strip()
    if len(carrier) > 40 or len(tracking_number) > 80:
        raise ValidationFailed("Carrier (40 characters) or tracking number (80) too long.")
    return _move(
        session,
        order,
        "ship",
        "seller",
        shipped_at=now or utcnow(),
        carrier=carrier,
        tracking_number=tracking_number,
    )


def mark_delivered(session: Session, order_id: int, user_id: int, now: datetime | None = None) -> Order:
    order = _order_for(session, order_id)
    if user_id not in (order.buyer_id, order.seller_id):
        raise Forbidden("Not your order.")
    role: states.Role = "seller" if user_id == order.seller_id else "buyer"
    return _move(session, order, "deliver", role, delivered_at=now or utcnow())


def cancel(
    session: Session, order_id: int, user_id: int, provider: PaymentProvider, now: datetime | None = None
) -> Order:
    """The buyer may cancel before paying; the seller before shipping (a paid order is refunded).

    The order is cancelled with its refund "pending" in one conditional update before the provider is
    asked, so a second click or tab finds it cancelled and refunds nothing."""
    order = _order_for(session, order_id)
    if user_id not in (order.buyer_id, order.seller_id):
        raise Forbidden("Not your order.")
    role: states.Role = "seller" if user_id == order.seller_id else "buyer"
    refund = states.refund_due(order.status, "cancelled")
    _move(
        session,
        order,
        "cancel",
        role,
        cancelled_at=now or utcnow(),
        cancel_reason=role,
        refund_status="pending" if refund else "",
    )
    refresh_sold_count(session, order.listing_id)
    session.commit()
    if refund:
        settle_refund(session, order, provider)
    return order


def settle_refund(session: Session, order: Order, provider: PaymentProvider) -> Order:
    """Ask the provider to refund an order whose refund is pending; the outcome is recorded either way
    (a failed refund stays visible to the seller rather than vanishing)."""
    try:
        ref = provider.refund(order)
    except Exception:
        _set_refund(session, order, "failed")
        raise
    return _set_refund(session, order, "refunded", refunded_cents=order.price_cents, refund_ref=ref[:80])


def retry_refund(session: Session, order_id: int, user_id: int, provider: PaymentProvider) -> Order:
    """The seller asks again for a refund that failed; failed -> pending is the one conditional update
    that lets a single click reach the provider."""
    order = _order_for(session, order_id)
    if order.seller_id != user_id:
        raise Forbidden("Only the seller retries a refund.")
    result = session.execute(
        update(Order)
        .where(col(Order.id) == order.id, col(Order.refund_status) == "failed")
        .values(refund_status="pending", refund_attempts=col(Order.refund_attempts) + 1)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise Conflict("There is no failed refund to retry on this order.")
    session.commit()
    session.refresh(order)
    return settle_refund(session, order, provider)


def _set_refund(session: Session, order: Order, status: str, **values: object) -> Order:
    session.execute(
        update(Order)
        .where(col(Order.id) == order.id, col(Order.refund_status) == "pending")
        .values(refund_status=status, **values)
    )
    session.commit()
    session.refresh(order)
    return order


def expire_unpaid(
    session: Session, lot_bids: LotBids, now: datetime | None = None, window_minutes: int = 15
) -> list[Order]:
    """Cancel every order past its payment window; an unpaid auction win goes to the runner-up as a
    second-chance offer at their own maximum."""

    now = now or utcnow()
    due = session.exec(select(Order).where(Order.status == "awaiting_payment", col(Order.pay_by) < now)).all()
    cancelled: list[Order] = []
    for order in due:
        result = session.execute(
            update(Order)
            .where(col(Order.id) == order.id, col(Order.status) == "awaiting_payment")
            .values(status="cancelled", cancelled_at=now, cancel_reason="unpaid")
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            continue
        refresh_sold_count(session, order.listing_id)
        if order.source == "auction":
            offer_next(session, order, lot_bids, now, window_minutes)
        session.commit()
        session.refresh(order)
        cancelled.append(order)
    return cancelled


def offer_next(
    session: Session, order: Order, lot_bids: LotBids, now: datetime, window_minutes: int
) -> SecondChanceOffer | None:
    """Offer the unpaid win to the highest bidder of the lot not yet offered it, at their own maximum
    (the caller commits). None when every bidder has had their chance."""
    if order.lot_id is None or order.id is None:
        return None
    asked = set(
        session.exec(select(SecondChanceOffer.buyer_id).where(SecondChanceOffer.order_id == order.id)).all()
    )
    asked.add(order.buyer_id)
    runner = next(((b, m) for b, m in lot_bids(session, order.lot_id) if b not in asked), None)
    if runner is None:
        return None
    bidder_id, max_cents = runner
    offer = SecondChanceOffer(
        order_id=order.id,
        buyer_id=bidder_id,
        seller_id=order.seller_id,
        listing_id=order.listing_id,
        show_id=order.show_id,
        lot_id=order.lot_id,
        price_cents=max_cents,
        created_at=now,
        expires_at=now + timedelta(minutes=window_minutes),
    )
    session.add(offer)
    return offer


def _close_offer(
    session: Session,
    offer: SecondChanceOffer,
    status: str,
    lot_bids: LotBids,
    now: datetime,
    window_minutes: int,
) -> bool:
    """Open -> declined/expired, then pass the win on; False when someone else closed it first."""
    result = session.execute(
        update(SecondChanceOffer)
        .where(col(SecondChanceOffer.id) == offer.id, col(SecondChanceOffer.status) == "open")
        .values(status=status)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        return False
    order = session.get(Order, offer.order_id)
    if order is not None:
        offer_next(session, order, lot_bids, now, window_minutes)
    session.commit()
    session.refresh(offer)
    return True


def expire_offers(
    session: Session, lot_bids: LotBids, now: datetime | None = None, window_minutes: int = 15
) -> list[SecondChanceOffer]:
    """Close every open offer past its time and pass each win to the next bidder."""
    now = now or utcnow()
    due = session.exec(
        select(SecondChanceOffer).where(
            SecondChanceOffer.status == "open", col(SecondChanceOffer.expires_at) < now
        )
    ).all()
    return [offer for offer in due if _close_offer(session, offer, "expired", lot_bids, now, window_minutes)]


def accept_second_chance(
    session: Session,
    offer_id: int,
    user_id: int,
    lot_bids: LotBids,
    now: datetime | None = None,
    window_minutes: int = 15,
) -> Order:
    now = now or utcnow()
    offer = session.get(SecondChanceOffer, offer_id)
    if offer is None or offer.buyer_id != user_id:
        raise NotFound("No such offer.")
    if offer.status != "open":
        raise Conflict(f"This offer is {offer.status}.")
    if now > offer.expires_at:
        _close_offer(session, offer, "expired", lot_bids, now, window_minutes)
        raise Conflict("This offer has expired.")
    # Take the offer conditionally, before the unit, as every other offer path does: the sweeper lapsing
    # it at this moment passes the win on to the next bidder, and only one of the two may win, or one
    # auction sells two units of a multi-quantity listing.
    taken = session.execute(
        update(SecondChanceOffer)
        .where(col(SecondChanceOffer.id) == offer_id, col(SecondChanceOffer.status) == "open")
        .values(status="accepted")
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        session.refresh(offer)
        raise Conflict(f"This offer is {offer.status}.")
    try:
        order = create_order(
            session,
            user_id,
            offer.listing_id,
            offer.price_cents,
            "second_chance",
            show_id=offer.show_id,
            lot_id=offer.lot_id,
            now=now,
            payment_window_minutes=window_minutes,
            commit=False,
        )
    except Exception:
        session.rollback()  # no unit left (sold elsewhere meanwhile): the offer stays as it was
        raise
    session.execute(
        update(SecondChanceOffer).where(col(SecondChanceOffer.id) == offer_id).values(new_order_id=order.id)
    )
    session.commit()
    session.refresh(offer)
    return order


def decline_second_chance(
    session: Session,
    offer_id: int,
    user_id: int,
    lot_bids: LotBids,
    now: datetime | None = None,
    window_minutes: int = 15,
) -> SecondChanceOffer:
    offer = session.get(SecondChanceOffer, offer_id)
    if offer is None or offer.buyer_id != user_id:
        raise NotFound("No such offer.")
    if offer.status != "open" or not _close_offer(
        session, offer, "declined", lot_bids, now or utcnow(), window_minutes
    ):
        raise Conflict(f"This offer is {offer.status}.")
    return offer
