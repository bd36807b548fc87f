"""200 viewers join and leave a live show: server tasks, peers and memory stay flat."""

from __future__ import annotations

import asyncio
import gc
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection

from liveshow.signaling.client import Watcher, publish
from tests.test_whip_media import Stage, staged_server, wait_for


@pytest.fixture
def stage(tmp_path: Path, sqlite_url: str) -> Iterator[Stage]:
    yield from staged_server(tmp_path, sqlite_url)


async def server_tasks(stage: Stage) -> int:
    async def count() -> int:
        return len(asyncio.all_tasks())

    assert stage.loop is not None
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(count(), stage.loop))


def live_peers() -> int:
    gc.collect()
    return sum(isinstance(o, RTCPeerConnection) and o.connectionState != "closed" for o in gc.get_objects())


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


async def cycle(stage: Stage, show_id: int) -> None:
    watcher = Watcher()
    await watcher.watch(stage.whep)
    await wait_for(lambda: stage.media.viewer_count(show_id) == 1, step=0.01)
    await watcher.close()
    await wait_for(lambda: not stage.media.shows[show_id].viewers, step=0.01)


async def test_join_leave_cycles_stay_flat(stage: Stage) -> None:
    show_id = stage.show.id or 0
    pub, _ = await publish(stage.whip, stage.show.stream_key)
    await wait_for(lambda: stage.media.state(show_id) == "live")
    for _ in range(20):  # warm-up: caches, thread pools, first-use allocations
        await cycle(stage, show_id)
    await asyncio.sleep(0.5)
    tasks0, peers0, rss0 = await server_tasks(stage), live_peers(), rss_mb()
    for _ in range(200):
        await cycle(stage, show_id)
    await asyncio.sleep(0.5)
    tasks1, peers1, rss1 = await server_tasks(stage), live_peers(), rss_mb()
    print(f"tasks {tasks0}->{tasks1} peers {peers0}->{peers1} rss {rss0:.1f}->{rss1:.1f} MB")
    assert tasks1 <= tasks0 + 2
    assert peers1 <= peers0
    assert rss1 - rss0 < 40, f"memory grew {rss1 - rss0:.1f} MB over 200 cycles"
    assert stage.media.viewer_count(show_id) == 0 and not stage.media.shows[show_id].relay.outputs
    await pub.close()
