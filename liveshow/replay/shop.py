"""Buying from a replay: an item of the show not sold during it can be bought at its listing price.

The price is the listing's, never the form's; the order goes through the same order service as a live
claim (one unit under the same database fence), with source "replay"."""

from __future__ import annotations

from sqlmodel import Session

from liveshow.accounts.models import User
from liveshow.closet.models import Listing
from liveshow.errors import Conflict, Forbidden, NotFound
from liveshow.orders.models import Order
from liveshow.orders.service import create_order
from liveshow.replay.access import still_for_sale
from liveshow.shows.models import Show


def buy_from_replay(
    session: Session, show: Show, buyer: User, listing_id: int, payment_window_minutes: int
) -> Order:
    """One unit of a listing the replay offers, at its listing price, for a signed-in buyer."""
    assert show.id is not None and buyer.id is not None
    if buyer.id == show.seller_id:
        raise Forbidden("You cannot buy your own item.")
    offered = {item["id"] for item in still_for_sale(session, show)}
    listing = session.get(Listing, listing_id)
    if listing is None or listing.seller_id != show.seller_id:
        raise NotFound("That item is not part of this show.")
    if listing_id not in offered:
        raise Conflict("That item is no longer for sale.")
    return create_order(
        session,
        buyer.id,
        listing_id,
        listing.price_cents,
        "replay",
        show_id=show.id,
        payment_window_minutes=payment_window_minutes,
    )
