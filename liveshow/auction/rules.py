"""The claim and auction rules: pure functions over frozen state, time injected in milliseconds.

A show has a ``Book``: at most one lot on screen. Each command returns an ``Outcome`` (the new book,
the events to announce, the sales to turn into orders) or raises a DomainError and changes nothing.
No I/O here: the single writer (writer.py) persists outcomes, then announces them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from liveshow.auction.errors import (
    BidTooLow,
    HasBids,
    LotClosed,
    LotStillOpen,
    NotOnScreen,
    OverBuyerLimit,
    SelfBidding,
)
from liveshow.auction.increments import increment, next_bid
from liveshow.orders.errors import SoldOut

ANTI_SNIPE_MS = 10_000
DEFAULT_DURATION_MS = 30_000

LotKind = Literal["claim", "auction"]
LotState = Literal["open", "closed", "cancelled"]


@dataclass(frozen=True)
class Claim:
    buyer_id: int
    quantity: int
    at_ms: int
    first_unit: int  # units of the lot are numbered 1..quantity in the writer's order


@dataclass(frozen=True)
class Bid:
    bidder_id: int
    max_cents: int
    at_ms: int
    order: int  # position among the lot's accepted bids: equal maxima go to the lower order


@dataclass(frozen=True)
class Lot:
    lot_no: int
    listing_id: int
    seller_id: int
    kind: LotKind
    opened_at_ms: int
    state: LotState = "open"
    closed_at_ms: int | None = None
    # Why it ended (sold, unsold, sold_out, closed, cancelled, sold_elsewhere): kept with the lot so a
    # page opened later, or a restarted writer, tells the same story as the lot.closed event did.
    outcome: str = ""
    # claim lots
    price_cents: int = 0
    quantity: int = 1
    per_buyer_limit: int = 1
    claims: tuple[Claim, ...] = ()
    # auction lots
    start_cents: int = 0
    ends_at_ms: int = 0
    sudden_death: bool = False
    # Not the bid history (that is the auction_bids table): all the standing needs, so a bid costs
    # the same and the lot persists in the same few bytes at the 5th bid and the 50,000th.
    top: tuple[Bid, ...] = ()  # the two best bidders' latest bids, best first
    bid_count: int = 0
    last_bid: Bid | None = None

    @property
    def units_claimed(self) -> int:
        return sum(c.quantity for c in self.claims)

    @property
    def remaining(self) -> int:
        return (
            self.quantity - self.units_claimed if self.kind == "claim" else (1 if self.state == "open" else 0)
        )

    def claimed_by(self, buyer_id: int) -> int:
        return sum(c.quantity for c in self.claims if c.buyer_id == buyer_id)


@dataclass(frozen=True)
class Standing:
    leader_id: int | None
    leader_max: int
    price_cents: int  # what the leader pays if the auction ended now
    runner_id: int | None
    runner_max: int


@dataclass(frozen=True)
class Sale:
    lot_no: int
    listing_id: int
    seller_id: int
    buyer_id: int
    price_cents: int
    unit: int  # unit number within the lot
    source: Literal["claim", "auction"]


@dataclass(frozen=True)
class Book:
    show_id: int
    seller_id: int
    lot: Lot | None = None
    lots_opened: int = 0


@dataclass(frozen=True)
class Outcome:
    book: Book
    events: tuple[tuple[str, dict[str, Any]], ...] = ()
    sales: tuple[Sale, ...] = ()
    reply: dict[str, Any] = field(default_factory=dict)


def _top_two(lot: Lot) -> tuple[Bid | None, Bid | None]:
    leader = lot.top[0] if lot.top else None
    runner = lot.top[1] if len(lot.top) > 1 else None
    return leader, runner


def rank_bids(bids: Iterable[Bid]) -> tuple[Bid, ...]:
    """The top two of a whole history (a bidder's later bid always raises their own maximum)."""
    best: dict[int, Bid] = {}
    for placed in bids:
        best[placed.bidder_id] = placed
    return tuple(sorted(best.values(), key=_rank)[:2])


def _rank(placed: Bid) -> tuple[int, int]:
    return (-placed.max_cents, placed.order)


def _with_bid(top: tuple[Bid, ...], placed: Bid) -> tuple[Bid, ...]:
    """The top two after ``placed``: its bidder's earlier entry is replaced. No third bidder can move
    up, since only the bidder of ``placed`` changed and their maximum only goes up."""
    return tuple(sorted([b for b in top if b.bidder_id != placed.bidder_id] + [placed], key=_rank)[:2])


def standing(lot: Lot) -> Standing:
    """Leader = the highest maximum (earlier on a tie); price = runner-up + one increment, capped."""
    leader, runner = _top_two(lot)
    if leader is None:
        return Standing(None, 0, lot.start_cents, None, 0)
    if runner is None:
        return Standing(leader.bidder_id, leader.max_cents, lot.start_cents, None, 0)
    price = min(leader.max_cents, runner.max_cents + increment(runner.max_cents))
    return Standing(
        leader.bidder_id, leader.max_cents, max(price, lot.start_cents), runner.bidder_id, runner.max_cents
    )


def min_next_bid(lot: Lot) -> int:
    if not lot.bid_count:
        return lot.start_cents
    return next_bid(standing(lot).price_cents)


def lot_view(lot: Lot) -> dict[str, Any]:
    """The public picture of a lot (what the item card shows)."""
    view: dict[str, Any] = {
        "lot_no": lot.lot_no,
        "listing_id": lot.listing_id,
        "kind": lot.kind,
        "state": lot.state,
    }
    if lot.outcome:
        view["outcome"] = lot.outcome
    if lot.kind == "claim":
        view.update(
            price_cents=lot.price_cents,
            quantity=lot.quantity,
            remaining=lot.remaining,
            per_buyer_limit=lot.per_buyer_limit,
        )
    else:
        s = standing(lot)
        view.update(
            start_cents=lot.start_cents,
            ends_at_ms=lot.ends_at_ms,
            sudden_death=lot.sudden_death,
            price_cents=s.price_cents,
            leader_id=s.leader_id,
            bids=lot.bid_count,
            next_min_cents=min_next_bid(lot),
        )
    return view


# ---------------------------------------------------------------- host commands


def _require_no_open_lot(book: Book) -> None:
    if book.lot is not None and book.lot.state == "open":
        raise LotStillOpen("Close the item on screen first.")


def open_claim(
    book: Book, listing_id: int, price_cents: int, quantity: int, per_buyer_limit: int, now_ms: int
) -> Outcome:
    _require_no_open_lot(book)
    lot = Lot(
        lot_no=book.lots_opened + 1,
        listing_id=listing_id,
        seller_id=book.seller_id,
        kind="claim",
        opened_at_ms=now_ms,
        price_cents=price_cents,
        quantity=quantity,
        per_buyer_limit=min(per_buyer_limit, quantity),
    )
    new = replace(book, lot=lot, lots_opened=lot.lot_no)
    return Outcome(new, (("lot.opened", {"lot": lot_view(lot)}),), reply={"lot": lot_view(lot)})


def open_auction(
    book: Book, listing_id: int, start_cents: int, duration_ms: int, sudden_death: bool, now_ms: int
) -> Outcome:
    _require_no_open_lot(book)
    lot = Lot(
        lot_no=book.lots_opened + 1,
        listing_id=listing_id,
        seller_id=book.seller_id,
        kind="auction",
        opened_at_ms=now_ms,
        start_cents=start_cents,
        ends_at_ms=now_ms + duration_ms,
        sudden_death=sudden_death,
    )
    new = replace(book, lot=lot, lots_opened=lot.lot_no)
    return Outcome(new, (("lot.opened", {"lot": lot_view(lot)}),), reply={"lot": lot_view(lot)})


def _current(book: Book, lot_no: int | None, now_ms: int) -> Lot:
    lot = book.lot
    if lot is None or (lot_no is not None and lot.lot_no != lot_no):
        raise NotOnScreen("That item is not on screen.")
    if lot.state != "open" or (lot.kind == "auction" and now_ms >= lot.ends_at_ms):
        raise LotClosed("That item is closed.")
    return lot


def cancel(book: Book, now_ms: int) -> Outcome:
    lot = book.lot
    if lot is None or lot.state != "open":
        raise NotOnScreen("No item is on screen.")
    if lot.bid_count or lot.claims:
        raise HasBids("An item cannot be cancelled once it has a bid or a claim.")
    done = replace(lot, state="cancelled", closed_at_ms=now_ms, outcome="cancelled")
    event = {
        "lot_no": lot.lot_no,
        "listing_id": lot.listing_id,
        "outcome": "cancelled",
        "lot": lot_view(done),
    }
    return Outcome(replace(book, lot=done), (("lot.closed", event),), reply={"lot": lot_view(done)})


def close(book: Book, now_ms: int, by_host: bool, unit_gone: bool = False) -> Outcome:
    """End the lot on screen: a claim lot at any time, an auction when its clock has run out.

    ``unit_gone``: the writer found no unit left for the auction's winner (a private offer, a replay
    purchase or a giveaway sold it while the auction ran). The auction still ends, as "sold elsewhere"
    with no sale, so that the show moves on instead of retrying a sale that cannot happen."""
    lot = book.lot
    if lot is None or lot.state != "open":
        raise NotOnScreen("No item is on screen.")
    if lot.kind == "auction" and now_ms < lot.ends_at_ms:
        if by_host:
            raise LotStillOpen("An auction runs until its clock ends.")
        raise LotStillOpen("Not yet.")
    events: list[tuple[str, dict[str, Any]]] = []
    sales: tuple[Sale, ...] = ()
    s = standing(lot) if lot.kind == "auction" else None
    if s is None:
        outcome = "sold_out" if lot.remaining == 0 else "closed"
    elif s.leader_id is None:
        outcome = "unsold"
    elif unit_gone:
        outcome = "sold_elsewhere"
    else:
        outcome = "sold"
    done = replace(lot, state="closed", closed_at_ms=now_ms, outcome=outcome)
    closed: dict[str, Any] = {"lot_no": lot.lot_no, "listing_id": lot.listing_id, "outcome": outcome}
    if s is not None and s.leader_id is not None:
        if outcome == "sold":
            sales = (
                Sale(lot.lot_no, lot.listing_id, lot.seller_id, s.leader_id, s.price_cents, 1, "auction"),
            )
            closed.update(winner_id=s.leader_id, price_cents=s.price_cents)
        else:
            closed["leader_id"] = s.leader_id  # who led, for the room; no price: nothing was sold
    events.append(("lot.closed", {**closed, "lot": lot_view(done)}))
    if s is not None and s.leader_id is not None:
        if outcome == "sold":
            notice = {"kind": "won", "lot_no": lot.lot_no, "price_cents": s.price_cents}
        else:
            notice = {
                "kind": "sold_elsewhere",
                "lot_no": lot.lot_no,
                "price_cents": s.price_cents,
                "reason": "The item sold elsewhere before the auction ended: no order was made.",
            }
        events.append(("notice", {"to": [s.leader_id], **notice}))
    return Outcome(replace(book, lot=done), tuple(events), sales, reply={"lot": lot_view(done)})


def due_ms(book: Book) -> int | None:
    """When the writer must close the lot on its own (auction clock), else None."""
    lot = book.lot
    if lot is not None and lot.state == "open" and lot.kind == "auction":
        return lot.ends_at_ms
    return None


# ---------------------------------------------------------------- viewer commands


def claim(book: Book, buyer_id: int, quantity: int, now_ms: int, lot_no: int | None = None) -> Outcome:
    lot = book.lot
    if (
        lot is not None
        and lot.kind == "claim"
        and lot.state == "closed"
        and lot.remaining == 0
        and (lot_no is None or lot_no == lot.lot_no)
    ):
        raise SoldOut("Sold out.")
    lot = _current(book, lot_no, now_ms)
    if lot.kind != "claim":
        raise NotOnScreen("This item is an auction: bid instead.")
    if buyer_id == lot.seller_id:
        raise SelfBidding("You cannot claim your own item.")
    if lot.remaining <= 0:
        raise SoldOut("Sold out.")
    if quantity > lot.remaining:
        raise SoldOut(f"Only {lot.remaining} left.", remaining=lot.remaining)
    if lot.claimed_by(buyer_id) + quantity > lot.per_buyer_limit:
        raise OverBuyerLimit(f"At most {lot.per_buyer_limit} per buyer.", limit=lot.per_buyer_limit)
    first = lot.units_claimed + 1
    new_lot = replace(lot, claims=(*lot.claims, Claim(buyer_id, quantity, now_ms, first)))
    sales = tuple(
        Sale(lot.lot_no, lot.listing_id, lot.seller_id, buyer_id, lot.price_cents, first + i, "claim")
        for i in range(quantity)
    )
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "claim.accepted",
            {
                "lot_no": lot.lot_no,
                "buyer_id": buyer_id,
                "quantity": quantity,
                "remaining": new_lot.remaining,
                "price_cents": lot.price_cents,
            },
        ),
    ]
    if new_lot.remaining == 0:
        new_lot = replace(new_lot, state="closed", closed_at_ms=now_ms, outcome="sold_out")
        events.append(
            (
                "lot.closed",
                {
                    "lot_no": lot.lot_no,
                    "listing_id": lot.listing_id,
                    "outcome": "sold_out",
                    "lot": lot_view(new_lot),
                },
            )
        )
    reply = {
        "lot_no": lot.lot_no,
        "quantity": quantity,
        "units": [first + i for i in range(quantity)],
        "price_cents": lot.price_cents,
        "remaining": new_lot.remaining,
    }
    return Outcome(replace(book, lot=new_lot), tuple(events), sales, reply)


def bid(book: Book, bidder_id: int, max_cents: int, now_ms: int, lot_no: int | None = None) -> Outcome:
    lot = _current(book, lot_no, now_ms)
    if lot.kind != "auction":
        raise NotOnScreen("This item is buy-now: claim it instead.")
    if bidder_id == lot.seller_id:
        raise SelfBidding("You cannot bid on your own item.")
    before = standing(lot)
    minimum = next_bid(before.price_cents) if lot.bid_count else lot.start_cents  # min_next_bid(lot)
    if max_cents < minimum:
        raise BidTooLow(f"The next bid is at least {minimum} cents.", min_cents=minimum)
    # Only the leader can hold a maximum at or above the minimum: everyone else's is at most the
    # runner-up's, which the price already covers.
    own = before.leader_max if before.leader_id == bidder_id else 0
    if max_cents <= own:
        raise BidTooLow("Your maximum is already at least that.", min_cents=own + 1)
    ends = lot.ends_at_ms
    if not lot.sudden_death and ends - now_ms < ANTI_SNIPE_MS:
        ends = now_ms + ANTI_SNIPE_MS
    placed = Bid(bidder_id, max_cents, now_ms, lot.bid_count)
    new_lot = replace(
        lot,
        top=_with_bid(lot.top, placed),
        bid_count=lot.bid_count + 1,
        last_bid=placed,
        ends_at_ms=ends,
    )
    after = standing(new_lot)
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "bid.accepted",
            {
                "lot_no": lot.lot_no,
                "bidder_id": bidder_id,
                "leader_id": after.leader_id,
                "price_cents": after.price_cents,
                "ends_at_ms": ends,
                "bids": new_lot.bid_count,
                "next_min_cents": next_bid(after.price_cents),  # min_next_bid(new_lot): it has a bid
            },
        ),
    ]
    if after.leader_id != bidder_id:
        events.append(
            (
                "notice",
                {"to": [bidder_id], "kind": "outbid", "lot_no": lot.lot_no, "price_cents": after.price_cents},
            )
        )
    elif before.leader_id is not None and before.leader_id != bidder_id:
        events.append(
            (
                "notice",
                {
                    "to": [before.leader_id],
                    "kind": "outbid",
                    "lot_no": lot.lot_no,
                    "price_cents": after.price_cents,
                },
            )
        )
    reply = {
        "lot_no": lot.lot_no,
        "leading": after.leader_id == bidder_id,
        "price_cents": after.price_cents,
        "max_cents": max_cents,
        "ends_at_ms": ends,
    }
    return Outcome(replace(book, lot=new_lot), tuple(events), (), reply)
