"""The pure claim and auction rules: examples for every rule and refusal, and Hypothesis state machines."""

from __future__ import annotations

import pytest
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from liveshow.auction import rules
from liveshow.auction.commands import lot_from_dict, lot_to_dict
from liveshow.auction.errors import (
    BidTooLow,
    HasBids,
    LotClosed,
    LotStillOpen,
    NotOnScreen,
    OverBuyerLimit,
    SelfBidding,
    SoldOut,
)
from liveshow.auction.increments import increment, next_bid

SELLER = 1
BOOK = rules.Book(show_id=7, seller_id=SELLER)


def auction(start: int = 1000, duration: int = 30_000, sudden: bool = False, now: int = 0) -> rules.Book:
    return rules.open_auction(BOOK, 10, start, duration, sudden, now).book


def claims(quantity: int = 3, limit: int = 2, price: int = 1500) -> rules.Book:
    return rules.open_claim(BOOK, 10, price, quantity, limit, 0).book


@pytest.mark.parametrize(
    ("price", "step"),
    [
        (0, 100),
        (99, 100),
        (100, 100),
        (2999, 100),
        (3000, 200),
        (4999, 200),
        (5000, 300),
        (9999, 300),
        (10000, 500),
        (29999, 500),
        (30000, 1000),
        (99999, 1000),
        (100000, 2000),
        (199999, 2000),
        (200000, 5000),
        (10_000_000, 5000),
    ],
)
def test_increment_table(price: int, step: int) -> None:
    assert increment(price) == step
    assert next_bid(price) == price + step


def test_first_bid_at_start_price_leads_at_start() -> None:
    out = rules.bid(auction(), 2, 1000, 1000)
    s = rules.standing(out.book.lot)  # type: ignore[arg-type]
    assert (s.leader_id, s.price_cents) == (2, 1000)
    assert out.reply["leading"] is True
    assert [t for t, _ in out.events] == ["bid.accepted"]


def test_proxy_bid_pays_runner_up_plus_increment() -> None:
    book = rules.bid(auction(), 2, 5000, 1000).book  # max $50
    out = rules.bid(book, 3, 2000, 2000)  # $20 loses to the proxy
    s = rules.standing(out.book.lot)  # type: ignore[arg-type]
    assert (s.leader_id, s.price_cents) == (2, 2100)
    assert ("notice", {"to": [3], "kind": "outbid", "lot_no": 1, "price_cents": 2100}) in out.events


def test_price_capped_at_winner_max_and_equal_max_earlier_wins() -> None:
    book = rules.bid(auction(), 2, 5000, 1000).book
    out = rules.bid(book, 3, 5000, 2000)
    s = rules.standing(out.book.lot)  # type: ignore[arg-type]
    assert (s.leader_id, s.price_cents) == (2, 5000)
    assert out.reply["leading"] is False


def test_new_leader_notifies_previous_one() -> None:
    book = rules.bid(auction(), 2, 1500, 1000).book
    out = rules.bid(book, 3, 3000, 2000)
    s = rules.standing(out.book.lot)  # type: ignore[arg-type]
    assert (s.leader_id, s.price_cents) == (3, 1600)
    assert ("notice", {"to": [2], "kind": "outbid", "lot_no": 1, "price_cents": 1600}) in out.events


def test_bid_below_next_increment_refused() -> None:
    book = rules.bid(auction(), 2, 1000, 1000).book
    with pytest.raises(BidTooLow) as err:
        rules.bid(book, 3, 1099, 2000)
    assert err.value.details["min_cents"] == 1100
    with pytest.raises(BidTooLow):
        rules.bid(auction(), 3, 999, 10)


def test_leader_may_raise_own_max_but_not_lower_it() -> None:
    book = rules.bid(auction(), 2, 3000, 1000).book
    with pytest.raises(BidTooLow):
        rules.bid(book, 2, 3000, 1100)
    out = rules.bid(book, 2, 4000, 1200)
    assert rules.standing(out.book.lot).leader_max == 4000  # type: ignore[arg-type]
    assert rules.standing(out.book.lot).price_cents == 1000  # type: ignore[arg-type]


def test_anti_sniping_resets_clock_to_ten_seconds() -> None:
    book = auction(duration=30_000)
    out = rules.bid(book, 2, 1000, 25_000)
    assert out.book.lot.ends_at_ms == 35_000  # type: ignore[union-attr]
    out = rules.bid(book, 2, 1000, 15_000)  # not in the last 10 s
    assert out.book.lot.ends_at_ms == 30_000  # type: ignore[union-attr]


def test_sudden_death_keeps_clock() -> None:
    out = rules.bid(auction(sudden=True), 2, 1000, 29_999)
    assert out.book.lot.ends_at_ms == 30_000  # type: ignore[union-attr]


def test_no_bid_at_or_after_end_and_close_sells_to_leader() -> None:
    book = rules.bid(auction(), 2, 2000, 1000).book
    book = rules.bid(book, 3, 1500, 2000).book
    with pytest.raises(LotClosed):
        rules.bid(book, 4, 5000, 30_000)
    with pytest.raises(LotStillOpen):
        rules.close(book, 29_999, by_host=True)
    out = rules.close(book, 30_000, by_host=False)
    assert out.sales == (rules.Sale(1, 10, SELLER, 2, 1600, 1, "auction"),)
    assert out.book.lot.state == "closed"  # type: ignore[union-attr]
    with pytest.raises(LotClosed):
        rules.bid(out.book, 4, 5000, 30_001)


def test_close_without_bids_is_unsold() -> None:
    out = rules.close(auction(), 30_000, by_host=False)
    assert out.sales == ()
    assert out.events[0][1]["outcome"] == "unsold"


def test_close_with_the_unit_gone_is_sold_elsewhere_without_a_sale() -> None:
    book = rules.bid(auction(), 2, 2000, 1000).book
    book = rules.bid(book, 3, 1500, 2000).book
    with pytest.raises(LotStillOpen):  # the clock still rules: no early end because the unit went
        rules.close(book, 29_999, by_host=True, unit_gone=True)
    out = rules.close(book, 30_000, by_host=False, unit_gone=True)
    assert out.sales == ()
    lot = out.book.lot
    assert lot is not None and (lot.state, lot.outcome, lot.closed_at_ms) == (
        "closed",
        "sold_elsewhere",
        30_000,
    )
    assert rules.due_ms(out.book) is None
    assert lot_from_dict(lot_to_dict(lot)) == lot  # persisted and reloaded as it is
    (kind, closed), (notice_kind, notice) = out.events
    assert (kind, closed["outcome"], closed["leader_id"]) == ("lot.closed", "sold_elsewhere", 2)
    assert "winner_id" not in closed and closed["lot"]["outcome"] == "sold_elsewhere"
    assert notice_kind == "notice" and notice["to"] == [2] and notice["kind"] == "sold_elsewhere"
    assert "no order was made" in notice["reason"]
    # without a bid nobody is let down: still "unsold"
    assert rules.close(auction(), 30_000, by_host=False, unit_gone=True).events[0][1]["outcome"] == "unsold"
    # the next item goes up
    assert rules.open_claim(out.book, 11, 1500, 1, 1, 30_001).book.lot.lot_no == 2  # type: ignore[union-attr]


def test_seller_cannot_bid_or_claim() -> None:
    with pytest.raises(SelfBidding):
        rules.bid(auction(), SELLER, 1000, 10)
    with pytest.raises(SelfBidding):
        rules.claim(claims(), SELLER, 1, 10)


def test_wrong_lot_and_wrong_kind_and_nothing_on_screen() -> None:
    with pytest.raises(NotOnScreen):
        rules.bid(BOOK, 2, 1000, 10)
    with pytest.raises(NotOnScreen):
        rules.claim(BOOK, 2, 1, 10)
    with pytest.raises(NotOnScreen):
        rules.bid(auction(), 2, 1000, 10, lot_no=2)
    with pytest.raises(NotOnScreen):
        rules.claim(auction(), 2, 1, 10)
    with pytest.raises(NotOnScreen):
        rules.bid(claims(), 2, 1000, 10)


def test_claims_first_n_win_then_sold_out() -> None:
    book = claims(quantity=3, limit=2)
    out = rules.claim(book, 2, 2, 10)
    assert [s.unit for s in out.sales] == [1, 2]
    with pytest.raises(OverBuyerLimit):
        rules.claim(out.book, 2, 1, 11)
    with pytest.raises(SoldOut):
        rules.claim(out.book, 3, 2, 11)
    out = rules.claim(out.book, 3, 1, 12)
    assert out.sales[0].unit == 3
    assert out.book.lot.state == "closed"  # type: ignore[union-attr]
    assert out.events[-1][1]["outcome"] == "sold_out"
    with pytest.raises(SoldOut):
        rules.claim(out.book, 4, 1, 13)


def test_claim_after_host_close_is_closed() -> None:
    book = rules.close(claims(), 5, by_host=True).book
    with pytest.raises(LotClosed):
        rules.claim(book, 2, 1, 10)


def test_one_lot_at_a_time_and_cancel_only_before_first_bid() -> None:
    with pytest.raises(LotStillOpen):
        rules.open_claim(auction(), 11, 100, 1, 1, 0)
    book = rules.bid(auction(), 2, 1000, 10).book
    with pytest.raises(HasBids):
        rules.cancel(book, 20)
    out = rules.cancel(auction(), 20)
    assert out.book.lot.state == "cancelled"  # type: ignore[union-attr]
    with pytest.raises(NotOnScreen):
        rules.cancel(out.book, 30)
    nxt = rules.open_claim(out.book, 11, 100, 1, 1, 40).book
    assert nxt.lot.lot_no == 2  # type: ignore[union-attr]


# ---------------------------------------------------------------- Hypothesis


def reference_standing(accepted: list[tuple[int, int]], start: int) -> tuple[int | None, int]:
    """An independent model: per bidder the last (highest) max; best max wins, earliest on ties."""
    best: dict[int, tuple[int, int]] = {}
    for order, (bidder, amount) in enumerate(accepted):
        best[bidder] = (amount, order)
    if not best:
        return None, start
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
    leader, (lmax, _o) = ranked[0]
    if len(ranked) == 1:
        return leader, start
    rmax = ranked[1][1][0]
    return leader, min(lmax, rmax + increment(rmax))


class AuctionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.book = rules.open_auction(BOOK, 10, 500, 30_000, False, 0).book
        self.now = 0
        self.accepted: list[tuple[int, int]] = []
        self.history: list[rules.Bid] = []
        self.sales: list[rules.Sale] = []

    @property
    def lot(self) -> rules.Lot:
        assert self.book.lot is not None
        return self.book.lot

    def reference_allows(self, bidder: int, amount: int) -> bool:
        """The bid rules restated over the accepted bids: at least the next increment above the
        price (the start price before any bid), and above the bidder's own maximum."""
        _leader, price = reference_standing(self.accepted, 500)
        minimum = 500 if not self.accepted else next_bid(price)
        own = max((a for b, a in self.accepted if b == bidder), default=0)
        return amount >= minimum and amount > own

    @rule(bidder=st.integers(1, 5), amount=st.integers(1, 20_000), wait=st.integers(0, 12_000))
    def bid(self, bidder: int, amount: int, wait: int) -> None:
        self.now += wait
        before = self.book
        try:
            out = rules.bid(self.book, bidder, amount, self.now)
        except (BidTooLow, LotClosed, SelfBidding) as exc:
            assert self.book == before
            if isinstance(exc, LotClosed):
                assert self.now >= self.lot.ends_at_ms or self.lot.state != "open"
            if isinstance(exc, SelfBidding):
                assert bidder == SELLER
            if isinstance(exc, BidTooLow):
                assert not self.reference_allows(bidder, amount)
            return
        assert self.now < before.lot.ends_at_ms and before.lot.state == "open"  # type: ignore[union-attr]
        assert self.reference_allows(bidder, amount)
        self.book = out.book
        self.accepted.append((bidder, amount))
        self.history.append(rules.Bid(bidder, amount, self.now, len(self.history)))

    @precondition(lambda self: self.lot.state == "open")
    @rule(unit_gone=st.booleans())
    def clock_runs_out(self, unit_gone: bool) -> None:
        """``unit_gone``: an offer, a replay purchase or a giveaway took the unit while it ran."""
        self.now = max(self.now, self.lot.ends_at_ms)
        out = rules.close(self.book, self.now, by_host=False, unit_gone=unit_gone)
        self.book = out.book
        self.sales.extend(out.sales)
        assert rules.due_ms(self.book) is None  # closed whatever happened to the unit
        leader, price = reference_standing(self.accepted, 500)
        if leader is None:
            assert out.sales == () and self.lot.outcome == "unsold"
        elif unit_gone:
            assert out.sales == () and self.lot.outcome == "sold_elsewhere"
        else:
            assert out.sales[0].buyer_id == leader and out.sales[0].price_cents == price

    @invariant()
    def standing_matches_model(self) -> None:
        s = rules.standing(self.lot)
        leader, price = reference_standing(self.accepted, 500)
        assert (s.leader_id, s.price_cents) == (leader, price)
        if leader is not None:
            assert 500 <= s.price_cents <= s.leader_max
            if s.runner_id is not None:
                assert s.price_cents > s.runner_max or s.price_cents == s.leader_max

    @invariant()
    def carried_top_two_matches_a_ranking_of_the_whole_history(self) -> None:
        # rules.bid carries only the top two from lot to lot; a lot persisted before that carried the
        # whole history, and reading one back ranks it afresh: both must be the same lot.
        assert lot_from_dict(lot_to_dict(self.lot)) == self.lot
        assert self.lot.bid_count == len(self.history)
        assert self.lot.last_bid == (self.history[-1] if self.history else None)
        legacy = {k: v for k, v in lot_to_dict(self.lot).items() if k not in ("top", "bid_count", "last_bid")}
        legacy["bids"] = [dict(vars(b)) for b in self.history]
        assert lot_from_dict(legacy) == self.lot

    @invariant()
    def one_winner_at_most(self) -> None:
        assert len(self.sales) <= 1


class ClaimMachine(RuleBasedStateMachine):
    """Claims against an independent model (units sold per buyer, closed by the host): every refusal
    must be the one the model predicts, and every acceptance one the model allows."""

    QUANTITY, LIMIT = 4, 2

    def __init__(self) -> None:
        super().__init__()
        self.book = rules.open_claim(BOOK, 10, 1200, self.QUANTITY, self.LIMIT, 0).book
        self.now = 0
        self.sales: list[rules.Sale] = []
        self.bought: dict[int, int] = {}  # the model: units accepted per buyer
        self.host_closed = False

    def expected_refusal(self, buyer: int, quantity: int) -> type[Exception] | None:
        """The claim rules restated over the model, in the order the writer checks them."""
        remaining = self.QUANTITY - sum(self.bought.values())
        if remaining == 0:
            return SoldOut
        if self.host_closed:
            return LotClosed
        if buyer == SELLER:
            return SelfBidding
        if quantity > remaining:
            return SoldOut
        if self.bought.get(buyer, 0) + quantity > self.LIMIT:
            return OverBuyerLimit
        return None

    @rule(buyer=st.integers(1, 6), quantity=st.integers(1, 3))
    def claim(self, buyer: int, quantity: int) -> None:
        self.now += 1
        before = self.book
        expected = self.expected_refusal(buyer, quantity)
        try:
            out = rules.claim(self.book, buyer, quantity, self.now)
        except (SoldOut, OverBuyerLimit, SelfBidding, LotClosed) as exc:
            assert self.book == before
            assert type(exc) is expected, f"refused with {exc!r}, the model expected {expected}"
            return
        assert expected is None, f"accepted, the model expected {expected.__name__}"
        assert [s.buyer_id for s in out.sales] == [buyer] * quantity
        self.book = out.book
        self.sales.extend(out.sales)
        self.bought[buyer] = self.bought.get(buyer, 0) + quantity

    @rule()
    def host_closes(self) -> None:
        if self.book.lot is not None and self.book.lot.state == "open":
            self.book = rules.close(self.book, self.now, by_host=True).book
            self.host_closed = True

    @invariant()
    def never_oversold_and_units_unique(self) -> None:
        units = [s.unit for s in self.sales]
        assert len(units) <= 4 and len(set(units)) == len(units)
        assert sorted(units) == list(range(1, len(units) + 1))  # first N claims, in order
        per_buyer: dict[int, int] = {}
        for s in self.sales:
            per_buyer[s.buyer_id] = per_buyer.get(s.buyer_id, 0) + 1
        assert all(n <= 2 for n in per_buyer.values())
        assert SELLER not in per_buyer


TestAuctionMachine = AuctionMachine.TestCase
TestAuctionMachine.settings = hsettings(max_examples=150, stateful_step_count=40, deadline=None)
TestClaimMachine = ClaimMachine.TestCase
TestClaimMachine.settings = hsettings(max_examples=100, stateful_step_count=30, deadline=None)
