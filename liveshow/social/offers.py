"""Private offers: a seller offers a listing's likers a lower price for a while; a liker accepts it
into an order through the order service (same unit fence as a live claim, so exactly one wins)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from liveshow.accounts.models import User
from liveshow.clock import utcnow
from liveshow.errors import Conflict, Forbidden, NotFound, ValidationFailed
from liveshow.social import likes
from liveshow.social.models import Offer
from liveshow.social.orders_port import create_order

MIN_MINUTES, MAX_MINUTES = 5, 7 * 24 * 60
MAX_RECIPIENTS = 500


class OfferExpired(Conflict):
    code = "offer_expired"


class OfferUsed(Conflict):
    code = "offer_used"


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def send_offers(
    session: Session,
    seller: User,
    listing_id: int,
    price_cents: int,
    minutes: int,
    to: list[int] | None = None,
    now: datetime | None = None,
) -> list[Offer]:
    """Offer ``price_cents`` to the listing's likers (all, or the ``to`` subset, each of whom must be one)."""
    now = now or utcnow()
    listing = likes.get_listing(session, listing_id)
    if listing.seller_id != seller.id:
        raise Forbidden("Only the listing's seller can send offers on it.")
    if isinstance(price_cents, bool) or not isinstance(price_cents, int):
        raise ValidationFailed("price_cents must be a whole number of cents.")
    if not 0 < price_cents <= listing.price_cents:
        raise ValidationFailed("An offer is above zero and at most the list price.")
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not MIN_MINUTES <= minutes <= MAX_MINUTES:
        raise ValidationFailed(f"An offer lasts {MIN_MINUTES} minutes to 7 days.")
    if listing.available <= 0 or listing.status != "available":
        raise Conflict("This listing has no unit left to offer.")
    fans = set(likes.liker_ids(session, listing_id))
    if to is None:
        recipients = sorted(fans)
    else:
        if len(to) > MAX_RECIPIENTS or not all(isinstance(i, int) and not isinstance(i, bool) for i in to):
            raise ValidationFailed(f"to: at most {MAX_RECIPIENTS} user ids.")
        strangers = set(to) - fans
        if strangers:
            raise Forbidden("Offers go only to people who liked the listing.", not_likers=sorted(strangers))
        recipients = sorted(set(to))
    if not recipients:
        raise ValidationFailed("Nobody to send an offer to: no one has liked this listing yet.")
    # A new offer replaces an open older one for the same buyer.
    session.execute(
        update(Offer)
        .where(
            col(Offer.listing_id) == listing_id,
            col(Offer.buyer_id).in_(recipients),
            col(Offer.status) == "open",
        )
        .values(status="cancelled")
    )
    assert seller.id is not None
    offers = [
        Offer(
            listing_id=listing_id,
            seller_id=seller.id,
            buyer_id=uid,
            price_cents=price_cents,
            expires_at=now + timedelta(minutes=minutes),
            created_at=now,
        )
        for uid in recipients
    ]
    session.add_all(offers)
    session.commit()
    return offers


def accept(session: Session, buyer: User, offer_id: int, now: datetime | None = None) -> Offer:
    """Turn an open, unexpired offer into an order; the offer is used once, the unit sold once."""
    now = now or utcnow()
    offer = session.get(Offer, offer_id)
    if offer is None or offer.buyer_id != buyer.id:
        raise NotFound("No such offer.")
    if offer.status != "open":
        raise OfferUsed("This offer was already used or withdrawn.")
    if _aware(offer.expires_at) <= now:
        raise OfferExpired("This offer has expired.")
    # Claim the offer conditionally: two tabs accepting at once cannot both pass this line.
    claimed = session.execute(
        update(Offer).where(col(Offer.id) == offer_id, col(Offer.status) == "open").values(status="accepted")
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        raise OfferUsed("This offer was already used or withdrawn.")
    try:
        order = create_order(
            session, offer.buyer_id, offer.listing_id, offer.price_cents, "offer", commit=False
        )
    except Exception:
        session.rollback()  # sold out (a live sale won) or refused: the offer stays as it was
        raise
    session.execute(update(Offer).where(col(Offer.id) == offer_id).values(order_id=order.id))
    session.commit()
    session.refresh(offer)
    return offer


def received(session: Session, buyer_id: int, now: datetime | None = None) -> list[Offer]:
    now = now or utcnow()
    rows = session.exec(
        select(Offer)
        .where(Offer.buyer_id == buyer_id, Offer.status == "open")
        .order_by(col(Offer.created_at).desc())
        .limit(100)
    )
    return [o for o in rows if _aware(o.expires_at) > now]


def for_listing(session: Session, seller: User, listing_id: int) -> list[Offer]:
    listing = likes.get_listing(session, listing_id)
    if listing.seller_id != seller.id:
        raise Forbidden("Only the listing's seller sees its offers.")
    rows = session.exec(
        select(Offer).where(Offer.listing_id == listing_id).order_by(col(Offer.created_at).desc()).limit(500)
    )
    return list(rows)


def as_json(offer: Offer, now: datetime | None = None) -> dict[str, object]:
    now = now or utcnow()
    expired = offer.status == "open" and _aware(offer.expires_at) <= now
    return {
        "id": offer.id,
        "listing_id": offer.listing_id,
        "buyer_id": offer.buyer_id,
        "price_cents": offer.price_cents,
        "expires_at": _aware(offer.expires_at).isoformat(),
        "status": "expired" if expired else offer.status,
        "order_id": offer.order_id,
    }
