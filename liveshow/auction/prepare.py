"""What the writer reads before deciding a batch (off the event loop): earlier answers to the batch's
idempotency keys, and the show, listings and lineup that host commands refer to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import col, select

from liveshow import jsonwire
from liveshow.auction import rules
from liveshow.auction.commands import Command
from liveshow.auction.errors import LotStillOpen
from liveshow.auction.models import AuctionDecision, AuctionLot
from liveshow.closet.models import Listing, ListingPhoto
from liveshow.db import Database
from liveshow.errors import Conflict, Forbidden, NotFound
from liveshow.orders.errors import SoldOut
from liveshow.shows.models import LineupItem, Show

Answer = tuple[str, dict[str, Any]]


@dataclass
class Prepared:
    answers: dict[tuple[int, str], Answer] = field(default_factory=dict)
    show_state: str = "live"
    listings: dict[int, Listing] = field(default_factory=dict)
    photos: dict[int, str] = field(default_factory=dict)
    next_listing: int | None = None


def needs_db(commands: list[Command], cached: Mapping[tuple[int, str], Answer], complete: bool) -> bool:
    """Whether the batch must read anything first: a host command, or a key the writer may not know."""
    for c in commands:
        if c.kind in ("lot.open", "lot.next"):
            return True
        if not complete and c.key and c.user_id is not None and (c.user_id, c.key) not in cached:
            return True
    return False


def prepare(
    db: Database,
    show_id: int,
    book: rules.Book,
    commands: list[Command],
    cached: Mapping[tuple[int, str], Answer],
    complete: bool = False,
) -> Prepared:
    out = Prepared()
    wanted = {
        (c.user_id, c.key)
        for c in commands
        if c.key and c.user_id is not None and (c.user_id, c.key) not in cached and not complete
    }
    host = [c for c in commands if c.kind in ("lot.open", "lot.next")]
    if not wanted and not host:
        return out
    with db.session() as s:
        if wanted:
            keys = {k for _u, k in wanted}
            rows = s.exec(
                select(AuctionDecision).where(
                    AuctionDecision.show_id == show_id, col(AuctionDecision.idem_key).in_(keys)
                )
            ).all()
            for row in rows:
                if (
                    row.user_id is not None
                    and row.idem_key is not None
                    and (row.user_id, row.idem_key) in wanted
                ):
                    out.answers[(row.user_id, row.idem_key)] = (row.fingerprint, jsonwire.loads(row.reply))
        if host:
            show = s.get(Show, show_id)
            out.show_state = show.state if show is not None else "ended"
            ids = {c.payload["listing_id"] for c in host if c.payload.get("listing_id")}
            if any(c.kind == "lot.next" for c in host):
                # A lot cancelled before any bid or claim (cancel allows nothing else) used the listing up
                # for nothing: it stays in the lineup, except the one just cancelled on screen.
                opened = set(
                    s.exec(
                        select(AuctionLot.listing_id).where(
                            AuctionLot.show_id == show_id, AuctionLot.state != "cancelled"
                        )
                    ).all()
                )
                if book.lot is not None and book.lot.state == "cancelled":
                    opened.add(book.lot.listing_id)
                lineup = s.exec(
                    select(LineupItem)
                    .where(LineupItem.show_id == show_id)
                    .order_by(col(LineupItem.position), col(LineupItem.id))
                ).all()
                for item in lineup:
                    listing = s.get(Listing, item.listing_id)
                    if item.listing_id not in opened and listing is not None and listing.available > 0:
                        out.next_listing = item.listing_id
                        ids.add(item.listing_id)
                        break
            for listing in s.exec(select(Listing).where(col(Listing.id).in_(ids))).all() if ids else []:
                assert listing.id is not None
                out.listings[listing.id] = listing
                photo = s.exec(
                    select(ListingPhoto)
                    .where(ListingPhoto.listing_id == listing.id)
                    .order_by(col(ListingPhoto.position))
                ).first()
                if photo is not None:
                    out.photos[listing.id] = f"/uploads/{photo.thumb_filename or photo.filename}"
    return out


def apply_host(
    book: rules.Book, command: Command, prepared: Prepared, now_ms: int
) -> tuple[rules.Outcome, dict[str, Any] | None]:
    """Decide a host command; also returns the display info (title, size, photo) of a newly opened lot."""
    if command.kind == "lot.close":
        return rules.close(book, now_ms, by_host=True), None
    if command.kind == "lot.cancel":
        return rules.cancel(book, now_ms), None
    if book.lot is not None and book.lot.state == "open":
        raise LotStillOpen("Close the item on screen first.")
    if prepared.show_state != "live":
        raise Conflict("Go live before putting items up.")
    p = command.payload
    listing_id = p.get("listing_id") if command.kind == "lot.open" else prepared.next_listing
    if listing_id is None:
        raise NotFound("No more items in the lineup.")
    listing = prepared.listings.get(listing_id)
    if listing is None:
        raise NotFound("No such listing.")
    if listing.seller_id != book.seller_id:
        raise Forbidden("That listing is not yours.")
    if listing.available <= 0:
        raise SoldOut("That item is sold out.")
    info = {"title": listing.title, "size": listing.size, "photo_url": prepared.photos.get(listing_id, "")}
    if p.get("mode") == "auction":
        start = p.get("start_cents") or listing.price_cents
        outcome = rules.open_auction(
            book, listing_id, start, p["duration_s"] * 1000, p["sudden_death"], now_ms
        )
        return outcome, info
    quantity = p.get("quantity") or listing.available
    if quantity > listing.available:
        raise SoldOut(f"Only {listing.available} available.", available=listing.available)
    limit = p.get("per_buyer_limit") or quantity
    price = p.get("price_cents") or listing.price_cents
    return rules.open_claim(book, listing_id, price, quantity, limit, now_ms), info
