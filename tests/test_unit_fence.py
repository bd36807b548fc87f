"""Every way of selling takes a unit through the same fence (orders.service.create_order): whatever the
interleaving of live claims and auctions (through the show's writer), private offers, replay purchases,
giveaways, unpaid wins passed on as second chances (racing the sweeper) and cancellations, a listing
never has more live orders than units, one auction never sells two units, and an auction whose unit
went elsewhere still closes. A Hypothesis state machine over SQLite, with one injected clock."""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlmodel import col, select

from liveshow.auction.commands import Command
from liveshow.auction.lot_bids import ranked_bids
from liveshow.auction.models import AuctionDecision
from liveshow.auction.writer import ShowWriter
from liveshow.bus import make_bus
from liveshow.closet.models import Listing
from liveshow.db import Database, migrate
from liveshow.errors import DomainError
from liveshow.orders import service as orders
from liveshow.orders.models import Order, SecondChanceOffer
from liveshow.orders.providers import TestProvider
from liveshow.replay.shop import buy_from_replay
from liveshow.showlog import ShowLog
from liveshow.shows.models import Show
from liveshow.social import giveaways, likes, offers
from tests.auction_fixtures import key, make_world

QUANTITY = 2
MINUTE_MS = 60_000
_TEMPLATE: list[Path] = []


def template() -> Path:
    """One migrated SQLite file per test session; each example starts from a copy."""
    if not _TEMPLATE:
        folder = tempfile.mkdtemp(prefix="unit-fence-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = Path(folder) / "template.db"
        migrate(f"sqlite:///{path}")
        _TEMPLATE.append(path)
    return _TEMPLATE[0]


class SellingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="unit-fence-"))
        shutil.copy(template(), self.dir / "db.sqlite")
        self.db = Database(f"sqlite:///{self.dir / 'db.sqlite'}")
        self.world = make_world(self.db, viewers=4, quantities=(QUANTITY,))
        self.listing_id = self.world.listings[0].id or 0
        self.buyers = self.world.viewers
        self.now_ms = 1_800_000_000_000
        self.clock = mock.patch("liveshow.auction.writer.wall_ms", lambda: self.now_ms)
        self.clock.start()
        self.loop = asyncio.new_event_loop()
        self.showlog = ShowLog(make_bus("memory://"), self.db)
        self.writer = ShowWriter(self.db, self.showlog, self.world.show_id)
        self.writer.acquire()
        self.commands = 0

    def teardown(self) -> None:
        self.loop.run_until_complete(self.writer.close())
        self.loop.close()
        self.clock.stop()
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms / 1000, UTC)

    def send(self, kind: str, user_id: int | None, **payload: Any) -> dict[str, Any]:
        self.commands += 1
        command = Command(kind, self.world.show_id, user_id, key() if user_id else None, payload)
        [(_c, answer)] = self.loop.run_until_complete(self.writer.run_batch([command]))
        return answer

    def lot_open(self, kind: str | None = None) -> bool:
        lot = self.writer.book.lot
        return lot is not None and lot.state == "open" and kind in (None, lot.kind)

    def second_chance_open(self) -> bool:
        with self.db.session() as s:
            return (
                s.exec(select(SecondChanceOffer.id).where(SecondChanceOffer.status == "open")).first()
                is not None
            )

    # ------------------------------------------------------------ live: through the show's writer

    def put_up(self, auction: bool) -> None:
        if auction:
            # Long enough that the other ways of selling get their turns while it runs.
            payload = {"mode": "auction", "start_cents": 1000, "duration_s": 120, "sudden_death": True}
        else:
            payload = {"mode": "claim", "price_cents": None, "quantity": None, "per_buyer_limit": None}
        self.send("lot.open", self.world.seller.id, listing_id=self.listing_id, **payload)

    @initialize(order=st.permutations([0, 1, 2]))
    def an_auction_with_three_bidders(self, order: list[int]) -> None:
        # Three bidders: an unpaid win has a runner-up to offer it to, and a next one after them.
        self.put_up(auction=True)
        for amount, buyer in zip((1000, 1500, 2000), order, strict=True):
            self.bid(buyer, amount)

    @precondition(lambda self: not self.lot_open())
    @rule(auction=st.booleans())
    def host_puts_it_up(self, auction: bool) -> None:
        self.put_up(auction)

    @precondition(lambda self: self.lot_open("auction"))
    @rule(buyer=st.integers(0, 3), amount=st.integers(1000, 4000))
    def bid(self, buyer: int, amount: int) -> None:
        self.send("bid", self.buyers[buyer].id, max_cents=amount, lot_no=None)

    @precondition(lambda self: self.lot_open("claim"))
    @rule(buyer=st.integers(0, 3))
    def claim(self, buyer: int) -> None:
        self.send("claim", self.buyers[buyer].id, quantity=1, lot_no=None)

    def advance(self, to_ms: int) -> None:
        """Time passes; the writer closes a lot that falls due, as its dispatcher would."""
        self.now_ms = max(self.now_ms, to_ms)
        due = self.writer.due_ms()
        if due is not None and self.now_ms >= due:
            self.send("tick", None)

    @rule(seconds=st.integers(1, 40))
    def time_passes(self, seconds: int) -> None:
        self.advance(self.now_ms + seconds * 1000)

    @precondition(lambda self: self.lot_open())
    @rule()
    def host_closes(self) -> None:
        self.send("lot.close", self.world.seller.id)

    # ------------------------------------------------------------ elsewhere: straight to the services

    @rule(buyer=st.integers(0, 3))
    def private_offer(self, buyer: int) -> None:
        user = self.buyers[buyer]
        with self.db.session() as s:
            try:
                likes.set_like(s, user, self.listing_id, True)
                [offer] = offers.send_offers(
                    s, self.world.seller, self.listing_id, 900, 60, [user.id or 0], self.now
                )
                offers.accept(s, user, offer.id or 0, self.now)
            except DomainError:
                pass

    @rule(buyer=st.integers(0, 3))
    def replay_purchase(self, buyer: int) -> None:
        with self.db.session() as s:
            show = s.get(Show, self.world.show_id)
            assert show is not None
            try:
                buy_from_replay(s, show, self.buyers[buyer], self.listing_id, 15)
            except DomainError:
                pass

    @rule(buyer=st.integers(0, 3))
    def giveaway(self, buyer: int) -> None:
        with self.db.session() as s:
            try:
                drawn = giveaways.start(s, self.world.seller, self.world.show_id, self.listing_id)
                giveaways.enter(s, self.buyers[buyer], self.world.show_id)
                giveaways.draw(s, self.world.seller, drawn.id or 0, now=self.now)
            except DomainError:
                pass

    @rule(buyer=st.integers(0, 3))
    def buyer_cancels(self, buyer: int) -> None:
        with self.db.session() as s:
            order = s.exec(
                select(Order).where(
                    Order.buyer_id == self.buyers[buyer].id, Order.status == "awaiting_payment"
                )
            ).first()
            if order is not None:
                orders.cancel(s, order.id or 0, order.buyer_id, TestProvider(), self.now)

    @rule(minutes=st.integers(1, 30))
    def sweeper(self, minutes: int) -> None:
        self.advance(self.now_ms + minutes * MINUTE_MS)
        with self.db.session() as s:
            orders.expire_unpaid(s, ranked_bids, self.now)
            orders.expire_offers(s, ranked_bids, self.now)

    @precondition(lambda self: self.second_chance_open())
    @rule(sweeper_first=st.booleans(), late_ms=st.integers(0, 2000))
    def second_chance_accepted_as_the_sweeper_runs(self, sweeper_first: bool, late_ms: int) -> None:
        """The runner-up's request reads its offer just before it lapses; the sweeper may lapse it (and
        pass the win on) between that read and the accept's write."""
        with self.db.session() as accepting, self.db.session() as sweeping:
            offer = accepting.exec(
                select(SecondChanceOffer).where(SecondChanceOffer.status == "open")
            ).first()
            if offer is None:
                return
            self.advance(int(offer.expires_at.replace(tzinfo=UTC).timestamp() * 1000))
            if sweeper_first:
                orders.expire_offers(
                    sweeping, ranked_bids, datetime.fromtimestamp((self.now_ms + 1 + late_ms) / 1000, UTC)
                )
            try:
                orders.accept_second_chance(accepting, offer.id or 0, offer.buyer_id, ranked_bids, self.now)
            except DomainError:
                pass
            # and the bidder it was passed on to, if anyone, takes it too
            passed_on = sweeping.exec(
                select(SecondChanceOffer).where(SecondChanceOffer.status == "open")
            ).first()
            if passed_on is not None:
                try:
                    orders.accept_second_chance(
                        sweeping, passed_on.id or 0, passed_on.buyer_id, ranked_bids, self.now
                    )
                except DomainError:
                    pass

    # ------------------------------------------------------------ what must always hold

    @invariant()
    def never_more_live_orders_than_units(self) -> None:
        with self.db.session() as s:
            live = s.exec(
                select(Order).where(Order.listing_id == self.listing_id, col(Order.status) != "cancelled")
            ).all()
            units = [o.unit_no for o in live]
            assert len(units) <= QUANTITY and len(set(units)) == len(units)
            listing = s.get(Listing, self.listing_id)
            assert listing is not None and listing.sold_count == len(live)
            per_lot: dict[int | None, int] = {}
            for o in live:
                if o.source in ("auction", "second_chance"):
                    per_lot[o.lot_id] = per_lot.get(o.lot_id, 0) + 1
            assert all(n <= 1 for n in per_lot.values()), per_lot

    @invariant()
    def an_auction_never_stays_open_past_its_deadline(self) -> None:
        due = self.writer.due_ms()
        assert due is None or due > self.now_ms

    @invariant()
    def at_most_one_decision_per_command(self) -> None:
        with self.db.session() as s:
            decided = len(s.exec(select(AuctionDecision.id)).all())
        assert decided <= self.commands


TestSellingMachine = SellingMachine.TestCase
TestSellingMachine.settings = hsettings(max_examples=25, stateful_step_count=20, deadline=None)
