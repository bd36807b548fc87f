"""The auction service and its single writer, against memory + SQLite and Redis + PostgreSQL: decisions
persisted before announced, idempotent retries, every bad input refused with state unchanged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from liveshow.auction.commands import Command
from liveshow.auction.errors import (
    BadAmount,
    BadKey,
    BidTooLow,
    HasBids,
    HostOnly,
    KeyReused,
    LotClosed,
    NotOnScreen,
    OverBuyerLimit,
    SelfBidding,
    SoldOut,
)
from liveshow.auction.models import AuctionBid, AuctionDecision, AuctionLot
from liveshow.auction.service import AuctionService
from liveshow.bus import make_bus
from liveshow.clock import wall_ms
from liveshow.closet.models import Listing
from liveshow.db import Database
from liveshow.errors import NotAuthenticated, ValidationFailed
from liveshow.metrics import Metrics
from liveshow.orders.models import Order
from liveshow.settings import Settings
from liveshow.showlog import ShowLog, show_topic
from tests.auction_fixtures import World, WriterClock, key, make_world
from tests.conftest import REDIS_URL


class Harness:
    def __init__(self, service: AuctionService, db: Database, world: World, showlog: ShowLog) -> None:
        self.service, self.db, self.world, self.showlog = service, db, world, showlog
        assert service.metrics is not None
        self.metrics = service.metrics
        self.handle = service.on_message

    async def send(self, user: Any, **message: Any) -> dict[str, Any]:
        return await self.handle(self.world.show_id, user, message)

    def orders(self) -> list[Order]:
        with self.db.session() as s:
            return list(s.exec(select(Order).order_by(Order.id)).all())  # type: ignore[arg-type]

    def decisions(self) -> int:
        with self.db.session() as s:
            return len(s.exec(select(AuctionDecision)).all())


@pytest.fixture(
    params=["memory-sqlite", pytest.param("redis-postgres", marks=[pytest.mark.redis, pytest.mark.postgres])]
)
async def harness(request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str) -> AsyncIterator[Harness]:
    if request.param == "memory-sqlite":
        settings = Settings(data_dir=tmp_path, database_url=sqlite_url)
    else:
        prefix = request.getfixturevalue("redis_prefix")
        url = request.getfixturevalue("postgres_url")
        settings = Settings(data_dir=tmp_path, database_url=url, bus_url=REDIS_URL, bus_prefix=prefix)
    db = Database(settings.resolved_database_url)
    bus = make_bus(settings.bus_url, prefix=settings.bus_prefix)
    await bus.start()
    showlog = ShowLog(bus, db)
    service = AuctionService(settings, db, showlog, metrics=Metrics())
    await service.start()
    world = make_world(db)
    yield Harness(service, db, world, showlog)
    await service.stop()
    await showlog.stop()
    await bus.close()
    db.close()


async def test_claim_lot_sells_units_in_order_and_announces_after_persisting(harness: Harness) -> None:
    w = harness.world
    sub = harness.showlog.bus.subscribe(show_topic(w.show_id))
    opened = await harness.send(
        w.seller, type="lot.open", listing_id=w.listings[1].id, mode="claim", per_buyer_limit=2
    )
    assert opened["lot"]["quantity"] == 3 and opened["lot"]["remaining"] == 3
    first = await harness.send(w.viewers[0], type="claim", key=key(), quantity=2)
    assert first["units"] == [1, 2] and first["remaining"] == 1
    with pytest.raises(OverBuyerLimit):
        await harness.send(w.viewers[0], type="claim", key=key())
    with pytest.raises(SoldOut):
        await harness.send(w.viewers[1], type="claim", key=key(), quantity=2)
    await harness.send(w.viewers[1], type="claim", key=key())
    with pytest.raises(SoldOut):
        await harness.send(w.viewers[2], type="claim", key=key())
    orders = harness.orders()
    assert [o.buyer_id for o in orders] == [w.viewers[0].id, w.viewers[0].id, w.viewers[1].id]
    assert sorted(o.unit_no for o in orders) == [1, 2, 3]
    with harness.db.session() as s:
        listing = s.get(Listing, w.listings[1].id)
        assert listing is not None and listing.sold_count == 3 and listing.status == "sold"
    types = []
    while len(types) < 6:
        event = await sub.get(timeout=5)
        types.append(event.type)
        if event.type == "claim.accepted":
            # persisted before announced: the decision row exists when the event arrives
            with harness.db.session() as s:
                row = s.exec(select(AuctionDecision).where(AuctionDecision.seq == event.data["dseq"])).first()
                assert row is not None and row.accepted
    assert types[0] == "lot.opened" and "lot.closed" in types and "order.created" in types
    sub.close()


async def test_auction_proxy_bids_close_creates_order(harness: Harness) -> None:
    w = harness.world
    await harness.send(
        w.seller,
        type="lot.open",
        listing_id=w.listings[0].id,
        mode="auction",
        start_cents=1000,
        duration_s=1,
        sudden_death=True,
    )
    a, b = w.viewers[0], w.viewers[1]
    r1 = await harness.send(a, type="bid", key=key(), max_cents=3000)
    assert r1["leading"] and r1["price_cents"] == 1000
    r2 = await harness.send(b, type="bid", key=key(), max_cents=2000)
    assert not r2["leading"] and r2["price_cents"] == 2100
    with pytest.raises(HasBids):
        await harness.send(w.seller, type="lot.cancel")
    for _ in range(60):
        await asyncio.sleep(0.05)
        if harness.orders():
            break
    orders = harness.orders()
    assert len(orders) == 1 and orders[0].buyer_id == a.id and orders[0].price_cents == 2100
    assert orders[0].source == "auction" and orders[0].lot_id is not None
    with pytest.raises(LotClosed):
        await harness.send(b, type="bid", key=key(), max_cents=9000)


async def test_answers_and_writer_stages_are_measured(harness: Harness) -> None:
    w = harness.world
    await harness.send(
        w.seller,
        type="lot.open",
        listing_id=w.listings[0].id,
        mode="auction",
        start_cents=1000,
        duration_s=60,
    )
    await harness.send(w.viewers[0], type="bid", key=key(), max_cents=3000)
    with pytest.raises(BidTooLow):
        await harness.send(w.viewers[1], type="bid", key=key(), max_cents=10)

    def sample(name: str, **labels: str) -> float:
        value = harness.metrics.registry.get_sample_value(name, labels)
        return value or 0.0

    assert sample("liveshow_auction_answer_seconds_count", kind="bid") == 2  # a refusal is an answer too
    assert sample("liveshow_auction_answer_seconds_count", kind="host") == 1
    assert sample("liveshow_auction_batch_stage_seconds_count", stage="prepare") >= 1  # the lot.open
    for _ in range(40):  # the answer goes out with the announcement, just before its stage is timed
        if sample("liveshow_auction_batch_stage_seconds_count", stage="announce") >= 3:
            break
        await asyncio.sleep(0.05)
    for stage in ("decide", "persist", "announce"):
        assert sample("liveshow_auction_batch_stage_seconds_count", stage=stage) >= 3
    assert sample("liveshow_auction_batch_commands_sum") >= 3
    assert 0 < sample("liveshow_auction_answer_seconds_sum", kind="bid") < 10


async def test_idempotent_retry_returns_first_answer_and_reused_key_refused(harness: Harness) -> None:
    w = harness.world
    await harness.send(w.seller, type="lot.open", listing_id=w.listings[1].id, mode="claim", quantity=3)
    k = key()
    first = await harness.send(w.viewers[0], type="claim", key=k)
    again = await harness.send(w.viewers[0], type="claim", key=k)
    assert first == again and len(harness.orders()) == 1
    with pytest.raises(KeyReused):
        await harness.send(w.viewers[0], type="claim", key=k, quantity=2)
    # concurrent duplicates (same batch) also get one decision
    k2 = key()
    results = await asyncio.gather(*[harness.send(w.viewers[1], type="claim", key=k2) for _ in range(5)])
    assert all(r == results[0] for r in results) and len(harness.orders()) == 2
    # a writer taking over has no cache: the retry's answer then comes from the database
    fresh = harness.service.make_writer(w.show_id)
    await run_in_threadpool(fresh.acquire)
    retry = Command("claim", w.show_id, w.viewers[1].id, k2, {"quantity": 1, "lot_no": None})
    [(_cmd, answer)] = await fresh.run_batch([retry])
    assert {"type": "claim.result", "ok": True, **answer["ok"]} == results[0]
    assert len(harness.orders()) == 2


BAD_AMOUNTS: list[Any] = [-100, 0, 12.5, 1000.0, "abc", "12.5", None, True, 10**12, "", [1000]]


async def test_bad_input_refused_state_unchanged(harness: Harness) -> None:
    w = harness.world
    viewer, other = w.viewers[0], w.viewers[1]
    with pytest.raises(NotOnScreen):  # nothing on screen yet
        await harness.send(viewer, type="bid", key=key(), max_cents=1000)
    with pytest.raises(NotOnScreen):
        await harness.send(viewer, type="claim", key=key())
    with pytest.raises(HostOnly):
        await harness.send(viewer, type="lot.open", listing_id=w.listings[0].id, mode="auction")
    await harness.send(
        w.seller,
        type="lot.open",
        listing_id=w.listings[0].id,
        mode="auction",
        start_cents=1000,
        duration_s=60,
    )
    await harness.send(other, type="bid", key=key(), max_cents=1000)
    before = (harness.decisions(), harness.service.current_lot(w.show_id))
    for amount in BAD_AMOUNTS:
        with pytest.raises((BadAmount, ValidationFailed)):
            await harness.send(viewer, type="bid", key=key(), max_cents=amount)
    for bad_key in [None, "", "short", "x" * 200, "spaces are bad", 12345678]:
        with pytest.raises(BadKey):
            await harness.send(viewer, type="bid", key=bad_key, max_cents=2000)
    for kind in ("lot.open", "lot.close", "lot.next", "lot.cancel"):
        with pytest.raises(HostOnly):
            await harness.send(viewer, type=kind, listing_id=w.listings[1].id)
    with pytest.raises(NotAuthenticated):
        await harness.send(None, type="bid", key=key(), max_cents=5000)
    for qty in (0, -1, 1.5, "two", 10_000):
        with pytest.raises(ValidationFailed):
            await harness.send(viewer, type="claim", key=key(), quantity=qty)
    assert (harness.decisions(), harness.service.current_lot(w.show_id)) == before
    # refused by the writer (decided, recorded, state unchanged)
    with pytest.raises(BidTooLow):
        await harness.send(viewer, type="bid", key=key(), max_cents=1099)
    with pytest.raises(SelfBidding):
        await harness.send(w.seller, type="bid", key=key(), max_cents=5000)
    with pytest.raises(NotOnScreen):
        await harness.send(viewer, type="bid", key=key(), max_cents=5000, lot_no=99)
    with pytest.raises(NotOnScreen):
        await harness.send(viewer, type="claim", key=key())
    assert harness.service.current_lot(w.show_id) == before[1]
    assert harness.orders() == []


async def test_keyword_claim_in_chat(harness: Harness) -> None:
    w = harness.world
    await harness.send(w.seller, type="lot.open", listing_id=w.listings[1].id, mode="claim")
    await harness.service.on_chat(w.show_id, w.viewers[0], "Claim 2", 1)
    await harness.service.on_chat(w.show_id, w.viewers[1], "I love it", 2)  # not a claim
    await harness.service.on_chat(w.show_id, w.viewers[1], "claim", 3)
    orders = harness.orders()
    assert [o.buyer_id for o in orders] == [w.viewers[0].id, w.viewers[0].id, w.viewers[1].id]
    sub = harness.showlog.bus.subscribe(show_topic(w.show_id))
    await harness.service.on_chat(w.show_id, w.viewers[2], "claim", 4)  # sold out: a private notice
    event = await sub.get(timeout=5)
    assert (
        event.type == "notice" and event.data["to"] == [w.viewers[2].id] and event.data["code"] == "sold_out"
    )
    sub.close()


async def test_host_flow_next_close_cancel(harness: Harness) -> None:
    w = harness.world
    first = await harness.send(w.seller, type="lot.next", mode="claim", quantity=1)
    assert first["lot"]["listing_id"] == w.listings[0].id
    with pytest.raises(Exception) as err:
        await harness.send(w.seller, type="lot.next", mode="claim")
    assert getattr(err.value, "code", "") == "lot_open"
    await harness.send(w.seller, type="lot.cancel")
    second = await harness.send(w.seller, type="lot.next", mode="auction", duration_s=60)
    assert second["lot"]["listing_id"] == w.listings[1].id and second["lot"]["kind"] == "auction"
    await harness.send(w.seller, type="lot.cancel")
    state = await harness.send(None, type="lot.state")
    assert state["lot"]["state"] == "cancelled"
    with harness.db.session() as s:
        lots = s.exec(select(AuctionLot)).all()
        assert [lot.state for lot in lots] == ["cancelled", "cancelled"]
        assert json.loads(lots[1].state_json)["kind"] == "auction"
        assert s.exec(select(AuctionBid)).all() == []


async def test_lot_next_comes_back_to_listings_cancelled_before_any_bid(harness: Harness) -> None:
    w = harness.world
    first = await harness.send(w.seller, type="lot.next", mode="claim", quantity=1)
    await harness.send(w.seller, type="lot.cancel")
    # the item just cancelled is not put straight back on screen: the lineup moves on
    second = await harness.send(w.seller, type="lot.next", mode="auction", duration_s=60)
    assert (first["lot"]["listing_id"], second["lot"]["listing_id"]) == (w.listings[0].id, w.listings[1].id)
    await harness.send(w.seller, type="lot.cancel")
    # ...but neither cancelled item is used up: both come back, in lineup order
    again = await harness.send(w.seller, type="lot.next", mode="claim", quantity=1)
    assert again["lot"]["listing_id"] == w.listings[0].id
    await harness.send(w.viewers[0], type="claim", key=key())  # sold out: closes the lot
    last = await harness.send(w.seller, type="lot.next", mode="claim")
    assert last["lot"]["listing_id"] == w.listings[1].id
    await harness.send(w.seller, type="lot.close")
    with pytest.raises(Exception) as err:
        await harness.send(w.seller, type="lot.next", mode="claim")
    assert getattr(err.value, "code", "") == "not_found"


async def test_auction_whose_unit_sold_from_a_replay_closes_sold_elsewhere_and_lot_next_moves_on(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through both dispatchers (in-process, and Redis with its leader): the room hears the lot close
    as sold elsewhere, the leader is told, and "next" puts up the following item."""
    from liveshow.replay.shop import buy_from_replay
    from liveshow.shows.models import Show

    w = harness.world
    clock = WriterClock(wall_ms()).install(monkeypatch)
    sub = harness.showlog.bus.subscribe(show_topic(w.show_id))
    await harness.send(
        w.seller, type="lot.next", mode="auction", start_cents=1000, duration_s=1, sudden_death=True
    )
    await harness.send(w.viewers[0], type="bid", key=key(), max_cents=3000)

    def sell_elsewhere() -> None:
        with harness.db.session() as s:
            show = s.get(Show, w.show_id)
            assert show is not None
            buy_from_replay(s, show, w.viewers[1], w.listings[0].id or 0, 15)

    await run_in_threadpool(sell_elsewhere)
    clock.ms += 1_001  # the deadline passes once the unit has gone
    seen: dict[str, dict[str, Any]] = {}
    while "notice" not in seen:
        event = await sub.get(timeout=10)
        if event.type in ("lot.closed", "notice"):
            seen[event.type] = event.data
    sub.close()
    assert seen["lot.closed"]["outcome"] == "sold_elsewhere"
    assert seen["notice"]["to"] == [w.viewers[0].id] and seen["notice"]["kind"] == "sold_elsewhere"
    assert [o.source for o in harness.orders()] == ["replay"]
    following = await harness.send(w.seller, type="lot.next", mode="claim")
    assert following["lot"]["listing_id"] == w.listings[1].id
    state = await harness.send(w.viewers[2], type="lot.state")
    assert state["lot"]["listing_id"] == w.listings[1].id
