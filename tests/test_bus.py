"""The same behaviour from both bus adapters: ordering, numbering, history, gaps, fan-out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from liveshow.bus import Bus, Event, make_bus
from liveshow.bus.memory import MemoryBus
from liveshow.bus.redis import RedisBus
from tests.conftest import REDIS_URL


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def bus(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Bus]:
    the_bus: Bus = (
        MemoryBus(retain=50) if request.param == "memory" else RedisBus(REDIS_URL, 50, redis_prefix)
    )
    await the_bus.start()
    yield the_bus
    await the_bus.close()


async def test_publish_numbers_events_per_topic(bus: Bus) -> None:
    first = await bus.publish("show:1", "chat", {"text": "hi"})
    second = await bus.publish("show:1", "chat", {"text": "there"})
    other = await bus.publish("show:2", "chat", {"text": "elsewhere"})
    assert (first.seq, second.seq, other.seq) == (1, 2, 1)
    assert await bus.last_seq("show:1") == 2


async def test_subscribers_get_events_in_order(bus: Bus) -> None:
    sub = bus.subscribe("show:1", after_seq=await bus.last_seq("show:1"))
    for i in range(20):
        await bus.publish("show:1", "chat", {"n": i})
    got = [await sub.get(timeout=5) for _ in range(20)]
    assert [e.data["n"] for e in got] == list(range(20))
    assert [e.seq for e in got] == list(range(1, 21))
    sub.close()


async def test_history_after_seq_and_gap_too_old(bus: Bus) -> None:
    for i in range(500):
        await bus.publish("show:9", "chat", {"n": i})
    recent = await bus.history("show:9", 495)
    assert recent is not None and [e.seq for e in recent] == [496, 497, 498, 499, 500]
    assert await bus.history("show:9", 500) == []
    # About the last 50 are kept (Redis trims whole nodes): from the start is a gap to resync from.
    assert await bus.history("show:9", 0) is None


async def test_two_redis_buses_share_a_topic(redis_prefix: str) -> None:
    """Two server processes' buses: what one publishes, the other's subscribers receive, in order."""
    a, b = RedisBus(REDIS_URL, 100, redis_prefix), RedisBus(REDIS_URL, 100, redis_prefix)
    await a.start()
    await b.start()
    try:
        sub = b.subscribe("show:5", after_seq=0)
        await asyncio.gather(*(a.publish("show:5", "chat", {"n": i}) for i in range(10)))
        await b.publish("show:5", "chat", {"n": 10})
        got = [await sub.get(timeout=5) for _ in range(11)]
        assert [e.seq for e in got] == list(range(1, 12))
        assert got[-1].data == {"n": 10}
    finally:
        await a.close()
        await b.close()


async def test_a_batch_is_numbered_together_and_in_order(bus: Bus) -> None:
    sub = bus.subscribe("show:3", after_seq=0)
    await bus.publish("show:3", "chat", {"n": -1})
    events = await bus.publish_many("show:3", [("chat", {"n": i}) for i in range(7)])
    assert [e.seq for e in events] == list(range(2, 9))
    assert [e.data["n"] for e in events] == list(range(7))
    got = [await sub.get(timeout=5) for _ in range(8)]
    assert [(e.seq, e.data["n"]) for e in got] == [(1, -1), *[(i + 2, i) for i in range(7)]]
    sub.close()


class _Reservations:
    """A DurableLog's numbering, in memory: each reservation raises the ceiling by a block."""

    def __init__(self) -> None:
        self.ceiling = 0
        self.calls = 0

    async def reserve(self, topic: str, floor: int, block: int) -> int:
        self.calls += 1
        self.ceiling = max(self.ceiling, floor) + block
        return self.ceiling

    async def archived(self, topic: str, after_seq: int, before_seq: int | None) -> list[Event]:
        return []


@pytest.mark.redis
async def test_a_batch_across_the_ceiling_and_after_losing_the_counter_keeps_numbering_in_order(
    redis_prefix: str,
) -> None:
    """With the database as the authority the counter stops at the reserved ceiling: a batch that
    reaches it part way keeps the numbers it got and the rest is numbered after a new reservation;
    a counter that is gone (Redis restarted empty) is set again above everything handed out."""
    durable = _Reservations()
    bus = RedisBus(REDIS_URL, 100, redis_prefix, durable=durable, block=4)
    await bus.start()
    try:
        assert await bus.last_seq("show:7") == 0  # the first reservation: numbers up to 4
        sub = bus.subscribe("show:7", after_seq=0)
        first = await bus.publish_many("show:7", [("chat", {"n": i}) for i in range(11)])
        assert [e.seq for e in first] == list(range(1, 12))
        assert durable.calls >= 3 and durable.ceiling >= 11  # two more blocks for this one batch
        await bus.redis.delete(f"{redis_prefix}:show:7:seq")  # as if Redis had restarted empty
        after = await bus.publish_many("show:7", [("chat", {"n": i}) for i in range(11, 14)])
        assert min(e.seq for e in after) > 11
        assert [e.seq for e in after] == list(range(after[0].seq, after[0].seq + 3))
        got = [await sub.get(timeout=5) for _ in range(14)]
        assert [e.data["n"] for e in got] == list(range(14))
        assert [e.seq for e in got] == [e.seq for e in first + after]
        sub.close()
    finally:
        await bus.close()


def test_make_bus_rejects_unknown_url() -> None:
    with pytest.raises(ValueError, match="unsupported bus URL"):
        make_bus("kafka://x")
