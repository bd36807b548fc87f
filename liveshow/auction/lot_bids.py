"""A lot's accepted bids as orders reads them for second-chance offers (orders/service.LotBids)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from liveshow.auction.models import AuctionBid


def ranked_bids(session: Session, lot_id: int) -> list[tuple[int, int]]:
    """Every accepted bid of the lot, best first: highest maximum, then the earlier (bidder, cents)."""
    rows = session.exec(
        select(AuctionBid.bidder_id, AuctionBid.max_cents)
        .where(AuctionBid.lot_id == lot_id)
        .order_by(col(AuctionBid.max_cents).desc(), col(AuctionBid.id))
    ).all()
    return [(bidder_id, max_cents) for bidder_id, max_cents in rows]
