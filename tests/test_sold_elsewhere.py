"""An auction whose unit is sold elsewhere while it runs (a private offer, a replay purchase, a giveaway)
closes as "sold elsewhere" at its deadline: no order, its leader told, the show free to put up the next
item, nothing reloaded after a restart, and never a decision persisted over and over. SQLite and
PostgreSQL (``database_url``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from liveshow.auction.commands import Command
from liveshow.auction.local import LocalDispatcher
from liveshow.auction.models import AuctionDecision, AuctionLot
from liveshow.auction.writer import ShowWriter
from liveshow.bus import make_bus
from liveshow.bus.base import Subscription
from liveshow.clock import wall_ms
from liveshow.db import Database
from liveshow.orders.models import Order
from liveshow.replay.shop import buy_from_replay
from liveshow.showlog import ShowLog, show_topic
from liveshow.shows.models import Show
from liveshow.social import giveaways, likes, offers
from tests.auction_fixtures import World, WriterClock, key, make_world


@dataclass
class Stage:
    db: Database
    world: World
    showlog: ShowLog
    clock: WriterClock

    def past_the_deadline(self, writer: ShowWriter) -> None:
        due = writer.due_ms()
        assert due is not None
        self.clock.ms = due + 1

    def writer(self) -> ShowWriter:
        return ShowWriter(self.db, self.showlog, self.world.show_id)

    def decisions(self) -> int:
        with self.db.session() as s:
            rows = s.exec(select(AuctionDecision).where(AuctionDecision.show_id == self.world.show_id))
            return len(rows.all())

    def orders(self, listing_id: int) -> list[Order]:
        with self.db.session() as s:
            return list(s.exec(select(Order).where(Order.listing_id == listing_id)).all())

    def command(self, kind: str, user_id: int | None, **payload: Any) -> Command:
        return Command(kind, self.world.show_id, user_id, key() if kind == "bid" else None, payload)

    def open_auction(self, listing_id: int, duration_s: int = 1) -> Command:
        payload = {"mode": "auction", "listing_id": listing_id, "start_cents": 1000}
        return self.command(
            "lot.open", self.world.seller.id, **payload, duration_s=duration_s, sudden_death=True
        )


@pytest.fixture
async def stage(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stage]:
    db = Database(database_url)
    bus = make_bus("memory://")
    await bus.start()
    showlog = ShowLog(bus, db)
    clock = WriterClock(wall_ms()).install(monkeypatch)
    yield Stage(db, make_world(db, viewers=3, quantities=(1, 2)), showlog, clock)
    await showlog.stop()
    await bus.close()
    db.close()


# Each way of selling outside the live lot, taking the listing's last unit for ``buyer``.


def sell_by_offer(s: Session, w: World, listing_id: int) -> None:
    buyer = w.viewers[2]
    likes.set_like(s, buyer, listing_id, True)
    [offer] = offers.send_offers(s, w.seller, listing_id, 900, 60, to=[buyer.id or 0])
    offers.accept(s, buyer, offer.id or 0)


def sell_from_replay(s: Session, w: World, listing_id: int) -> None:
    show = s.get(Show, w.show_id)
    assert show is not None
    buy_from_replay(s, show, w.viewers[2], listing_id, 15)


def sell_by_giveaway(s: Session, w: World, listing_id: int) -> None:
    giveaway = giveaways.start(s, w.seller, w.show_id, listing_id)
    giveaways.enter(s, w.viewers[2], w.show_id)
    drawn, _ = giveaways.draw(s, w.seller, giveaway.id or 0)
    assert drawn.order_id is not None


SELLERS: dict[str, Callable[[Session, World, int], None]] = {
    "offer": sell_by_offer,
    "replay": sell_from_replay,
    "giveaway": sell_by_giveaway,
}


async def next_event(sub: Subscription, wanted: str, until: float) -> dict[str, Any]:
    while time.monotonic() < until:
        try:
            event = await sub.get(timeout=max(0.05, until - time.monotonic()))
        except TimeoutError:
            break
        if event.type == wanted:
            return dict(event.data)
    raise AssertionError(f"no {wanted} event in time")


@pytest.mark.parametrize("path", sorted(SELLERS))
async def test_auction_whose_unit_went_elsewhere_closes_sold_elsewhere_and_the_show_moves_on(
    stage: Stage, path: str
) -> None:
    w = stage.world
    lone, other = w.listings[0].id or 0, w.listings[1].id or 0
    sub = stage.showlog.bus.subscribe(show_topic(w.show_id))
    dispatcher = LocalDispatcher(lambda show_id: ShowWriter(stage.db, stage.showlog, show_id))
    try:
        assert "ok" in await dispatcher.submit(stage.open_auction(lone))
        leader = w.viewers[0].id
        assert "ok" in await dispatcher.submit(stage.command("bid", leader, max_cents=3000, lot_no=None))
        with stage.db.session() as s:
            await run_in_threadpool(SELLERS[path], s, w, lone)
        stage.past_the_deadline(dispatcher.writers[w.show_id])
        closed = await next_event(sub, "lot.closed", time.monotonic() + 8)
        assert closed["outcome"] == "sold_elsewhere" and closed["lot"]["state"] == "closed"
        assert closed["lot"]["outcome"] == "sold_elsewhere" and closed["leader_id"] == leader
        told = await next_event(sub, "notice", time.monotonic() + 2)
        assert told["to"] == [leader] and told["kind"] == "sold_elsewhere" and "no order" in told["reason"]
        # The unit went to the other buyer; the auction made no order.
        assert [(o.source, o.buyer_id) for o in stage.orders(lone)] == [(path, w.viewers[2].id)]
        with stage.db.session() as s:
            row = s.exec(select(AuctionLot).where(AuctionLot.show_id == w.show_id)).one()
            assert row.state == "closed" and row.closed_at is not None
            assert json.loads(row.state_json)["outcome"] == "sold_elsewhere"
        # Nothing more is decided once the lot is closed, however long the writer runs on.
        settled = stage.decisions()
        stage.clock.ms += 60_000
        await asyncio.sleep(0.5)
        assert stage.decisions() == settled <= 4
        # The host puts up the next item (before: "Close the item on screen first").
        assert "ok" in await dispatcher.submit(stage.open_auction(other, duration_s=60))
    finally:
        sub.close()
        await dispatcher.stop()


async def test_writer_past_the_deadline_persists_a_bounded_number_of_decisions(stage: Stage) -> None:
    """Driven as the dispatchers drive it: a tick whenever the lot is due, pass after pass."""
    w = stage.world
    lone = w.listings[0].id or 0
    writer = stage.writer()
    await run_in_threadpool(writer.acquire)
    try:
        await writer.run_batch([stage.open_auction(lone)])
        await writer.run_batch([stage.command("bid", w.viewers[0].id, max_cents=2000, lot_no=None)])
        with stage.db.session() as s:
            await run_in_threadpool(sell_by_offer, s, w, lone)
        before = stage.decisions()
        for _pass in range(25):
            stage.clock.ms += 500
            due = writer.due_ms()
            if due is not None and stage.clock.ms >= due:
                await writer.run_batch([stage.command("tick", None)])
        assert writer.due_ms() is None
        assert stage.decisions() - before == 1  # one close, not a refusal per pass
    finally:
        await writer.close()
    # A restart loads the lot as closed: no clock to run, nothing to decide again.
    again = stage.writer()
    await run_in_threadpool(again.acquire)
    try:
        assert again.book.lot is not None and again.book.lot.state == "closed"
        assert again.due_ms() is None
        opened = await again.run_batch([stage.open_auction(w.listings[1].id or 0, duration_s=60)])
        assert "ok" in opened[0][1]
    finally:
        await again.close()


async def test_host_close_after_the_deadline_closes_sold_elsewhere(stage: Stage) -> None:
    w = stage.world
    lone = w.listings[0].id or 0
    writer = stage.writer()
    await run_in_threadpool(writer.acquire)
    try:
        await writer.run_batch([stage.open_auction(lone)])
        await writer.run_batch([stage.command("bid", w.viewers[1].id, max_cents=2000, lot_no=None)])
        with stage.db.session() as s:
            await run_in_threadpool(sell_from_replay, s, w, lone)
        stage.past_the_deadline(writer)
        [(_c, answer)] = await writer.run_batch([stage.command("lot.close", w.seller.id)])
        assert answer["ok"]["lot"]["state"] == "closed"
        assert answer["ok"]["lot"]["outcome"] == "sold_elsewhere"
        assert [o.source for o in stage.orders(lone)] == ["replay"]
    finally:
        await writer.close()


async def test_claim_on_a_unit_sold_elsewhere_is_refused_sold_out_and_its_retry_gets_the_same_answer(
    stage: Stage,
) -> None:
    w = stage.world
    lone = w.listings[0].id or 0
    writer = stage.writer()
    await run_in_threadpool(writer.acquire)
    try:
        payload = {"mode": "claim", "listing_id": lone, "price_cents": None, "quantity": None}
        await writer.run_batch([stage.command("lot.open", w.seller.id, **payload, per_buyer_limit=None)])
        with stage.db.session() as s:
            await run_in_threadpool(sell_by_giveaway, s, w, lone)
        claim = Command("claim", w.show_id, w.viewers[0].id, key(), {"quantity": 1, "lot_no": None})
        [(_c, first)] = await writer.run_batch([claim])
        assert first["error"]["code"] == "sold_out"
        # A retry with the same key (a lost answer) is answered the same, not as a reused key.
        [(_c, retried)] = await writer.run_batch([claim])
        assert retried == first
        # and across a takeover, from the persisted decision
        again = stage.writer()
        await run_in_threadpool(again.acquire)
        [(_c, reloaded)] = await again.run_batch([claim])
        await again.close()
        assert reloaded == first
        assert [o.source for o in stage.orders(lone)] == ["giveaway"]
    finally:
        await writer.close()
