"""The writer's lifecycle at its edges: a memory-mode writer that another process fenced out stops (it
does not retry for ever), and a Redis-mode leader with nothing to decide lets go of the show."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from liveshow.auction import distributed
from liveshow.auction.commands import Command
from liveshow.auction.distributed import RedisDispatcher
from liveshow.auction.errors import WriterUnavailable
from liveshow.auction.local import LocalDispatcher
from liveshow.auction.writer import ShowWriter
from liveshow.bus import make_bus
from liveshow.db import Database
from liveshow.showlog import ShowLog
from tests.auction_fixtures import World, key, make_world
from tests.conftest import REDIS_URL


@contextlib.asynccontextmanager
async def redis_show(
    postgres_url: str, redis_prefix: str, viewers: int, quantity: int
) -> AsyncIterator[tuple[World, Callable[[int], ShowWriter], aioredis.Redis]]:
    """A show on PostgreSQL with its events on Redis: the world, a writer factory for dispatchers,
    and a Redis client to look at the keys with."""
    db = Database(postgres_url)
    w = make_world(db, viewers=viewers, quantities=(quantity,))
    bus = make_bus(REDIS_URL, prefix=redis_prefix)
    await bus.start()
    showlog = ShowLog(bus, db)
    probe = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        yield w, lambda show_id: ShowWriter(db, showlog, show_id), probe
    finally:
        await probe.aclose()
        await showlog.stop()
        await bus.close()
        db.close()


def open_claim(world_show: int, seller: int, listing: int) -> Command:
    payload = {"mode": "claim", "listing_id": listing, "price_cents": None, "quantity": None}
    return Command("lot.open", world_show, seller, None, {**payload, "per_buyer_limit": None})


async def test_fenced_memory_writer_stops_instead_of_retrying(database_url: str) -> None:
    db = Database(database_url)
    w = make_world(db, viewers=2, quantities=(5,))
    showlog = ShowLog(make_bus("memory://"), db)
    first = LocalDispatcher(lambda show_id: ShowWriter(db, showlog, show_id))
    second = LocalDispatcher(lambda show_id: ShowWriter(db, showlog, show_id))
    seller, listing = w.seller.id or 0, w.listings[0].id or 0
    opened = await first.submit(open_claim(w.show_id, seller, listing))
    assert "ok" in opened
    # A second process on the same database without the Redis bus (a misconfiguration) takes over:
    claim = Command("claim", w.show_id, w.viewers[0].id, key(), {"quantity": 1, "lot_no": None})
    assert "ok" in await second.submit(claim)
    started = time.monotonic()
    with pytest.raises(WriterUnavailable):
        await first.submit(
            Command("claim", w.show_id, w.viewers[1].id, key(), {"quantity": 1, "lot_no": None})
        )
    assert time.monotonic() - started < 5  # refused at once, not after the reply timeout
    task = first._tasks[w.show_id]
    await asyncio.sleep(0.3)
    assert task.done() and task.exception() is None  # the writer ended, it is not looping
    assert w.show_id in first.fenced and w.show_id not in first.writers
    with pytest.raises(WriterUnavailable):  # and later commands are refused without deciding
        await first.submit(
            Command("claim", w.show_id, w.viewers[1].id, key(), {"quantity": 1, "lot_no": None})
        )
    # the process that took over goes on deciding, from the persisted state
    answer = await second.submit(
        Command("claim", w.show_id, w.viewers[1].id, key(), {"quantity": 1, "lot_no": None})
    )
    assert answer["ok"]["units"] == [2]
    await first.stop()
    await second.stop()
    db.close()


@pytest.mark.redis
@pytest.mark.postgres
async def test_idle_leader_releases_the_show_and_comes_back_on_demand(
    postgres_url: str, redis_prefix: str
) -> None:
    async with redis_show(postgres_url, redis_prefix, viewers=1, quantity=5) as (w, make, probe):
        a = RedisDispatcher(REDIS_URL, redis_prefix, make, idle_release_ms=600)
        b = RedisDispatcher(REDIS_URL, redis_prefix, make, idle_release_ms=600)
        await a.start([])
        await b.start([])
        lease = f"{redis_prefix}:auction:{w.show_id}:leader"
        active = f"{redis_prefix}:auction:active"
        try:
            # a claim lot has no clock: once nobody sends it anything, nobody needs to lead it
            assert "ok" in await a.submit(open_claim(w.show_id, w.seller.id or 0, w.listings[0].id or 0))
            assert await probe.get(lease) in (a.token, b.token)
            # the submitter's interest outlives the reply timeout; shorten it for the test
            a._interest[w.show_id] -= 60_000
            for _ in range(100):  # the leader notices after idle_release_ms
                if not (await probe.exists(lease) or a._leading_now(w.show_id) or b._leading_now(w.show_id)):
                    break
                await asyncio.sleep(0.1)
            assert not await probe.exists(lease)
            assert not await probe.sismember(active, str(w.show_id))
            assert not a._leading_now(w.show_id) and not b._leading_now(w.show_id)
            await asyncio.sleep(1.0)  # and nobody campaigns for it again on their own
            assert not await probe.exists(lease)
            # the next command brings a writer back, with the state as persisted
            claim = Command("claim", w.show_id, w.viewers[0].id, key(), {"quantity": 2, "lot_no": None})
            answer = await b.submit(claim)
            assert answer["ok"]["units"] == [1, 2]
            assert await probe.get(lease) in (a.token, b.token)
        finally:
            await a.stop()
            await b.stop()


async def test_after_a_failed_batch_the_memory_writer_decides_from_the_database(
    database_url: str,
) -> None:
    db = Database(database_url)
    w = make_world(db, viewers=2, quantities=(5,))
    showlog = ShowLog(make_bus("memory://"), db)
    dispatcher = LocalDispatcher(lambda show_id: ShowWriter(db, showlog, show_id))
    seller, listing = w.seller.id or 0, w.listings[0].id or 0
    assert "ok" in await dispatcher.submit(open_claim(w.show_id, seller, listing))
    first = await dispatcher.submit(
        Command("claim", w.show_id, w.viewers[0].id, key(), {"quantity": 1, "lot_no": None})
    )
    epoch = first["ok"]["epoch"]
    # A command the handlers would never build (no quantity) fails its whole batch, not with a refusal.
    with pytest.raises(WriterUnavailable):
        await dispatcher.submit(Command("claim", w.show_id, w.viewers[1].id, key(), {"lot_no": None}))
    after = await dispatcher.submit(
        Command("claim", w.show_id, w.viewers[1].id, key(), {"quantity": 1, "lot_no": None})
    )
    # reloaded from the database (a new epoch), the next unit and the next decision number
    assert after["ok"]["units"] == [2] and after["ok"]["epoch"] == epoch + 1
    assert after["ok"]["dseq"] == first["ok"]["dseq"] + 1
    await dispatcher.stop()
    db.close()


@pytest.mark.redis
@pytest.mark.postgres
async def test_commands_grouped_in_one_entry_single_ones_and_the_leaders_own_are_decided_in_order(
    postgres_url: str, redis_prefix: str
) -> None:
    """Another process sends a show its pending commands as one stream entry; an entry of the previous
    version (one command, field "c") is still decided, so a rolling upgrade loses no bid; the leading
    process's own commands skip the stream."""
    async with redis_show(postgres_url, redis_prefix, viewers=3, quantity=10) as (w, make, probe):
        leader = RedisDispatcher(REDIS_URL, redis_prefix, make)
        other = RedisDispatcher(REDIS_URL, redis_prefix, make)
        await leader.start([])
        stream = f"{redis_prefix}:auction:{w.show_id}:cmds"
        old_replies = f"{redis_prefix}:auction:reply:old-version"
        try:
            # nobody leads the show yet: the first command goes through the stream, and its sender,
            # the only process running, takes the lease
            assert "ok" in await leader.submit(open_claim(w.show_id, w.seller.id or 0, w.listings[0].id or 0))
            assert leader._leading_now(w.show_id)
            assert await probe.xlen(stream) == 1
            await other.start([])
            # an old process appends one command per entry and reads its answer from its reply stream
            old = Command("claim", w.show_id, w.viewers[0].id, key(), {"quantity": 1, "lot_no": None})
            await probe.xadd(stream, {"c": old.to_json(), "r": old_replies})
            got = await probe.xread({old_replies: "0"}, block=5000)
            (_stream, [(_id, fields)]) = got[0]
            assert dict((cid, a) for cid, a in json.loads(fields["b"]))[old.id]["ok"]["units"] == [1]
            # the other process's burst goes out as one entry and is decided in the order it was sent
            burst = [
                Command("claim", w.show_id, viewer.id, key(), {"quantity": 1, "lot_no": None})
                for viewer in w.viewers[1:]
                for _ in range(2)
            ]
            answers = await asyncio.gather(*(other.submit(c) for c in burst))
            assert [a["ok"]["units"] for a in answers] == [[2], [3], [4], [5]]
            entries = await probe.xrange(stream)
            assert [[c["id"] for c in json.loads(f["cs"])] for _id, f in entries if "cs" in f][-1] == [
                c.id for c in burst
            ]
            # the leader's own claims keep being decided in the same order, without the stream
            mine = Command("claim", w.show_id, w.viewers[0].id, key(), {"quantity": 2, "lot_no": None})
            assert (await leader.submit(mine))["ok"]["units"] == [6, 7]
            assert await probe.xlen(stream) == 3  # the first command, the old one, the burst
        finally:
            await other.stop()
            await leader.stop()


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_command_nobody_answers_is_refused_after_the_reply_timeout_and_at_stop(
    postgres_url: str, redis_prefix: str
) -> None:
    """With the show's lease held by a process that never answers, a command is refused once the reply
    timeout has passed (retry with the same key), and one still waiting when the process stops is
    refused then; neither is left behind."""
    async with redis_show(postgres_url, redis_prefix, viewers=1, quantity=1) as (w, make, probe):
        await probe.set(f"{redis_prefix}:auction:{w.show_id}:leader", "a-process-that-hangs", px=60_000)
        dispatcher = RedisDispatcher(REDIS_URL, redis_prefix, make, reply_timeout=0.5)
        await dispatcher.start([])
        stopped = False
        try:
            claim = Command("claim", w.show_id, w.viewers[0].id, key(), {"quantity": 1, "lot_no": None})
            started = time.monotonic()
            with pytest.raises(WriterUnavailable):
                await dispatcher.submit(claim)
            assert 0.5 <= time.monotonic() - started < 2.0
            assert dispatcher._futures == {}
            waiting = asyncio.create_task(dispatcher.submit(claim))
            await asyncio.sleep(0.1)
            assert not waiting.done()
            await dispatcher.stop()
            stopped = True
            with pytest.raises(WriterUnavailable):
                await asyncio.wait_for(waiting, 1)
        finally:
            if not stopped:
                await dispatcher.stop()


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_stream_entry_is_never_split_between_batches_so_failover_loses_no_command(
    postgres_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry can hold more commands than a batch takes. The leader persists the stream position of
    the last entry it took; had a batch ended inside an entry, a leader that took over after that batch
    would read on after the whole entry and never decide the rest of it (its senders time out)."""
    monkeypatch.setattr(distributed, "MAX_BATCH", 3)
    async with redis_show(postgres_url, redis_prefix, viewers=5, quantity=10) as (w, make, probe):
        batches = 0

        def dies_after_two_batches(show_id: int) -> ShowWriter:
            writer = make(show_id)
            run_batch = writer.run_batch

            async def counted(*args: Any, **kwargs: Any) -> Any:
                nonlocal batches
                batches += 1
                if batches > 2:
                    raise RuntimeError("the process died here")
                return await run_batch(*args, **kwargs)

            writer.run_batch = counted  # type: ignore[method-assign]
            return writer

        first = RedisDispatcher(REDIS_URL, redis_prefix, dies_after_two_batches)
        await first.start([])
        stream = f"{redis_prefix}:auction:{w.show_id}:cmds"
        replies = f"{redis_prefix}:auction:reply:test"
        second: RedisDispatcher | None = None
        try:
            assert "ok" in await first.submit(open_claim(w.show_id, w.seller.id or 0, w.listings[0].id or 0))
            claims = [
                Command("claim", w.show_id, viewer.id, key(), {"quantity": 1, "lot_no": None})
                for viewer in w.viewers
            ]
            await probe.xadd(stream, {"cs": json.dumps([vars(c) for c in claims]), "r": replies})
            answered: dict[str, Any] = {}

            async def collect(until: float) -> None:
                last = "0"
                while time.monotonic() < until and len(answered) < len(claims):
                    got = await probe.xread({replies: last}, block=200)
                    for _stream, entries in got or []:
                        for entry_id, fields in entries:
                            last = entry_id
                            answered.update(dict(json.loads(fields["b"])))

            await collect(time.monotonic() + 3)
            await first.stop()
            second = RedisDispatcher(REDIS_URL, redis_prefix, make)
            await second.start([w.show_id])
            await collect(time.monotonic() + 10)
            assert sorted(answered) == sorted(c.id for c in claims)
            assert sorted(a["ok"]["units"][0] for a in answered.values()) == [1, 2, 3, 4, 5]
        finally:
            if second is not None:
                await second.stop()
            with contextlib.suppress(Exception):
                await first.stop()


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_reply_stream_keeps_its_ttl_and_is_trimmed_without_a_round_trip_per_batch(
    postgres_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leader sets the TTL of a submitting process's reply stream once a while, not with every
    batch, and the submitter trims what it has read at most every TRIM_EVERY_S (Redis trims whole
    nodes of 100 entries), so a busy stream stays bounded without an XTRIM per read."""
    monkeypatch.setattr(distributed, "TRIM_EVERY_S", 0.3)
    async with redis_show(postgres_url, redis_prefix, viewers=2, quantity=500) as (w, make, probe):
        leader = RedisDispatcher(REDIS_URL, redis_prefix, make)
        other = RedisDispatcher(REDIS_URL, redis_prefix, make)
        await leader.start([])

        async def calls(command: str) -> int:
            stats: dict[str, Any] = await probe.info("commandstats")
            return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

        try:
            assert "ok" in await leader.submit(open_claim(w.show_id, w.seller.id or 0, w.listings[0].id or 0))
            await other.start([])

            async def claim() -> None:
                c = Command("claim", w.show_id, w.viewers[0].id, key(), {"quantity": 1, "lot_no": None})
                assert "ok" in await other.submit(c)

            await claim()
            assert 0 < await probe.ttl(other.reply_key) <= distributed.REPLY_TTL_S
            trims, expires, started = await calls("xtrim"), await calls("expire"), time.monotonic()
            for _ in range(160):
                await claim()  # one batch each: each answered before the next is sent
            await asyncio.sleep(0.35)
            await claim()
            elapsed = time.monotonic() - started
            assert await calls("expire") == expires  # the TTL was not renewed with every batch
            assert 1 <= await calls("xtrim") - trims <= elapsed / 0.3 + 1
            assert await probe.xlen(other.reply_key) < 150  # the first full node of entries is gone
            await probe.persist(other.reply_key)
            monkeypatch.setattr(distributed, "REPLY_TTL_RENEW_S", 0.0)
            await claim()
            assert 0 < await probe.ttl(other.reply_key) <= distributed.REPLY_TTL_S
        finally:
            await other.stop()
            await leader.stop()
