"""The per-process load record: the same behaviour from the memory adapter and a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from liveshow.media.loadrecord import (
    LoadRecords,
    MemoryLoadRecords,
    ProcessLoad,
    RedisLoadRecords,
    make_load_records,
    with_headroom,
)
from tests.conftest import REDIS_URL

TTL = 0.4


def load(process: str = "p1", viewers: int = 3, admit: bool = True, **fields: object) -> ProcessLoad:
    values: dict[str, object] = {
        "process": process,
        "url": f"http://10.0.0.1:800{process[-1]}",
        "viewers": viewers,
        "admit": admit,
        "reason": "ok" if admit else "cpu",
        "shows": (4, 9),
        "updated_at": 1_700_000_000.5,
    }
    values.update(fields)
    return ProcessLoad(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def records(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[LoadRecords]:
    adapter: LoadRecords
    if request.param == "memory":
        adapter = MemoryLoadRecords(TTL)
    else:
        adapter = RedisLoadRecords(REDIS_URL, redis_prefix, TTL)
    await adapter.start()
    yield adapter
    await adapter.stop()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_each_process_reads_every_live_record(records: LoadRecords) -> None:
    assert await records.live() == []
    one, two = load("p1"), load("p2", viewers=250, admit=False)
    await records.publish(one)
    await records.publish(two)
    assert sorted(await records.live(), key=lambda r: r.process) == [one, two]


async def test_a_refresh_replaces_the_record(records: LoadRecords) -> None:
    await records.publish(load("p1", viewers=3))
    await records.publish(load("p1", viewers=7, shows=()))
    assert await records.live() == [load("p1", viewers=7, shows=())]


async def test_a_process_that_stops_refreshing_drops_out_and_one_that_refreshes_stays(
    records: LoadRecords,
) -> None:
    await records.publish(load("p1"))
    await records.publish(load("p2"))

    async def only_p2_left() -> bool:
        await records.publish(load("p2"))  # p2 keeps refreshing; p1 died
        return [r.process for r in await records.live()] == ["p2"]

    await eventually(only_p2_left)
    await asyncio.sleep(TTL / 2)
    await records.publish(load("p2"))
    assert [r.process for r in await records.live()] == ["p2"]


async def test_a_withdrawn_record_is_gone_at_once(records: LoadRecords) -> None:
    await records.publish(load("p1"))
    await records.publish(load("p2"))
    await records.withdraw("p1")
    await records.withdraw("never-there")
    assert [r.process for r in await records.live()] == ["p2"]


@pytest.mark.redis
async def test_redis_index_forgets_expired_processes_and_skips_foreign_values(redis_prefix: str) -> None:
    records = RedisLoadRecords(REDIS_URL, redis_prefix, TTL)
    await records.start()
    try:
        await records.publish(load("p1"))
        # Someone wrote garbage under a process's key: skipped, the rest still read.
        await records.redis.set(f"{redis_prefix}:load:bad", "not json", px=5000)
        await records.redis.sadd(f"{redis_prefix}:load:processes", "bad")
        assert [r.process for r in await records.live()] == ["p1"]

        async def index_emptied() -> bool:
            await records.redis.delete(f"{redis_prefix}:load:bad")
            live = await records.live()
            return not live and not await records.redis.smembers(f"{redis_prefix}:load:processes")

        await eventually(index_emptied)
    finally:
        await records.stop()


def test_the_record_round_trips_through_json_and_refuses_what_is_not_one() -> None:
    record = load("p1")
    assert ProcessLoad.from_json(record.to_json()) == record
    for raw in [
        "",
        "[]",
        "{}",
        '{"process": "p"}',
        '{"process":"p","url":"u","viewers":"x","admit":1,"reason":"ok","shows":[],"updated_at":1}',
    ]:
        assert ProcessLoad.from_json(raw) is None


def test_the_bus_url_picks_the_adapter(redis_prefix: str) -> None:
    assert isinstance(make_load_records("memory://", redis_prefix, 3), MemoryLoadRecords)
    assert isinstance(make_load_records(REDIS_URL, redis_prefix, 3), RedisLoadRecords)


def test_with_headroom_keeps_fresh_admitting_processes_least_loaded_first() -> None:
    now = 1_700_000_010.0
    loads = [
        load("p1", viewers=50, updated_at=now - 1),
        load("p2", viewers=10, updated_at=now - 1, shows=(1, 2, 3)),
        load("p3", viewers=10, updated_at=now - 0.5, shows=(1,)),
        load("p4", viewers=0, admit=False, updated_at=now),  # refusing
        load("p5", viewers=0, updated_at=now - 5),  # stale: stuck, its key not yet expired
        load("p6", viewers=0, updated_at=now),  # the asking process itself
    ]
    chosen = with_headroom(loads, now, max_age=3.0, exclude="p6")
    assert [c.process for c in chosen] == ["p3", "p2", "p1"]
    assert with_headroom(loads, now, max_age=3.0)[0].process == "p6"
    assert with_headroom([], now, max_age=3.0) == []
