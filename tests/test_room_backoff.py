"""A room backs off when its process runs late: rounds of writes come further apart (up to
OVERLOAD_TICK) while the loop's timers fire late, and return to the room's own interval once it keeps
time again."""

from __future__ import annotations

import asyncio
import time

from liveshow.bus.memory import MemoryBus
from liveshow.chat.moderation import ModState
from liveshow.chat.room import LAG_BUDGET, OVERLOAD_TICK, Room, next_stretch


def test_the_stretch_grows_while_late_is_capped_and_decays_when_on_time() -> None:
    stretch = 0.0
    seen = []
    for _ in range(30):
        stretch = next_stretch(stretch, late=LAG_BUDGET * 3)
        seen.append(stretch)
    assert seen == sorted(seen) and seen[0] > 0
    assert max(seen) == OVERLOAD_TICK
    assert next_stretch(0.02, late=LAG_BUDGET / 2) < 0.02
    assert next_stretch(0.0, late=LAG_BUDGET) == 0.0  # at the budget itself: no back-off
    rounds = 0
    while stretch > 0:
        stretch = next_stretch(stretch, late=0.0)
        rounds += 1
    assert rounds <= 30  # back to normal within a couple of seconds of rounds


async def test_a_room_stretches_its_rounds_under_lag_and_comes_back() -> None:
    bus = MemoryBus()
    await bus.start()
    room = Room(1, ModState(show_id=1, seller_id=1), tick=0.02, on_drop=lambda c: None)
    room.start(bus.subscribe("show:1"), [])
    stop = asyncio.Event()

    async def events() -> None:
        while not stop.is_set():
            await bus.publish("show:1", "chat", {"text": "x"})
            await asyncio.sleep(0.005)

    async def hog() -> None:  # a loop wanting more CPU than it gets: every callback overruns
        while True:
            time.sleep(0.03)  # noqa: ASYNC251 - blocking on purpose: that is the lag
            await asyncio.sleep(0)

    feeder = asyncio.create_task(events())
    try:
        assert room.current_tick() == 0.02
        hogging = asyncio.create_task(hog())
        await asyncio.sleep(1.5)
        hogging.cancel()
        stretched = room.current_tick()
        assert stretched > 0.05, stretched
        assert stretched <= OVERLOAD_TICK
        deadline = time.monotonic() + 10  # a couple of seconds here; room for a loaded CI machine
        while room.current_tick() > 0.02:
            assert time.monotonic() < deadline, room.current_tick()
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await feeder
        await room.stop()
        await bus.close()
