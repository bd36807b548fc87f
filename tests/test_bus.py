"""The same behaviour from both bus adapters: ordering, numbering, history, gaps, fan-out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from liveshow.bus import Bus, make_bus
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


def test_make_bus_rejects_unknown_url() -> None:
    with pytest.raises(ValueError, match="unsupported bus URL"):
        make_bus("kafka://x")
