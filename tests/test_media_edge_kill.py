"""Killing an edge process: its viewers are watching again on another process within 5 s.

Three real server processes (``uvicorn --factory``, as ``bench/faults.py`` starts them) on Redis and
one SQLite file: A holds the publisher, B and C are edges. The viewers are aiortc peers that decode;
like the browser player they reconnect when their session fails, and, like a load balancer, they try
the next process of a list: a viewer that has decoded nothing for ``STALL`` seconds starts over on the
next URL (a killed process answers no more packets; ICE consent would take 30 s to say so), or
when its first frame has not come within ``FIRST_FRAME`` seconds.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.cluster import setup_show
from bench.faults import Server
from liveshow.signaling.client import Watcher, publish
from tests.conftest import REDIS_URL
from tests.test_whip_media import wait_for

STALL = 1.0  # seconds without a decoded video frame before a viewer gives up on its process
FIRST_FRAME = 5.0  # ... and before its first one (ICE and DTLS, and on an edge its pull's too)
MOVE_WITHIN = 5.0  # seconds from the kill to every viewer decoding again


class RetryingViewer:
    """A decoding WHEP viewer over a list of process URLs, reconnecting as the player does."""

    def __init__(self, urls: list[str], start: int = 0) -> None:
        self.urls = urls
        self.index = start
        self.watcher: Watcher | None = None
        self.frames = 0  # video frames decoded over every session
        self.served_by = ""
        self.sessions = 0
        self.history: list[str] = []  # why each session ended (shown when an assertion fails)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            url = self.urls[self.index % len(self.urls)]
            watcher = Watcher()
            self.watcher = watcher
            try:
                await asyncio.wait_for(watcher.watch(url), timeout=5)
                self.served_by = url.split("/whep/")[0]
                self.sessions += 1
                counted = 0
                last_new = time.monotonic()
                while watcher.pc.connectionState not in ("failed", "closed"):
                    await asyncio.sleep(0.05)
                    now_frames = watcher.frames["video"]
                    if now_frames > counted:
                        self.frames += now_frames - counted
                        counted, last_new = now_frames, time.monotonic()
                    elif time.monotonic() - last_new > (STALL if counted else FIRST_FRAME):
                        self.history.append(f"{url}: stalled after {counted} frames")
                        break
                else:
                    self.history.append(f"{url}: {watcher.pc.connectionState}")
            except Exception as exc:
                self.history.append(f"{url}: {exc!r}"[:300])
                await asyncio.sleep(0.2)  # refused, or the process is gone: the next one
            self.index += 1
            self.served_by = ""
            await watcher.close(delete=False)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.watcher is not None:
            await self.watcher.close()


@pytest.fixture
def processes(tmp_path: Path, sqlite_url: str, redis_prefix: str) -> Iterator[list[Server]]:
    env = {
        "LIVESHOW_DATABASE_URL": sqlite_url,
        "LIVESHOW_BUS_URL": REDIS_URL,
        "LIVESHOW_BUS_PREFIX": redis_prefix,
        "LIVESHOW_SECRET_KEY": "edge-kill-" + secrets.token_hex(8),
        "LIVESHOW_ICE_INTERFACES": "127.0.0.1",
        "LIVESHOW_LOG_LEVEL": "WARNING",
        "LIVESHOW_GC_TUNING": "false",
        "LIVESHOW_LIMIT_WHEP_ADDRESS": "off",
        "LIVESHOW_MAX_WHEP_PER_ADDRESS": "0",
        "LIVESHOW_MEDIA_OWNER_TTL_SECONDS": "2",
        "LIVESHOW_MEDIA_EDGE_STALL_SECONDS": "1",
        "LIVESHOW_MEDIA_EDGE_GRACE_SECONDS": "2",
    }
    servers = []
    for name in "abc":
        data = tmp_path / name
        data.mkdir()
        server = Server({**env, "LIVESHOW_DATA_DIR": str(data)}, name)
        server.env["LIVESHOW_ADVERTISE_URL"] = server.url
        servers.append(server)
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.kill()
            server.log.close()


async def viewers_on(base: str, show_id: int) -> int:
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await http.get(f"{base}/api/shows/{show_id}/media")
    count: int = resp.json()["viewers"]
    return count


async def test_killing_an_edge_moves_its_viewers_to_another_process_within_5_s(
    processes: list[Server], sqlite_url: str
) -> None:
    a, b, c = processes
    show_id, key = setup_show(sqlite_url, migrate=False)
    pub, _ = await publish(f"{a.url}/whip/{show_id}", key)
    for _ in range(300):
        async with httpx.AsyncClient(timeout=5) as http:
            if (await http.get(f"{a.url}/api/shows/{show_id}/media")).json()["state"] == "live":
                break
        await asyncio.sleep(0.05)
    whep = [f"{s.url}/whep/{show_id}" for s in (b, c, a)]  # the balancer's list: edges first
    on_b = [RetryingViewer(whep, 0) for _ in range(3)]
    on_c = RetryingViewer(whep, 1)
    for viewer in (*on_b, on_c):
        viewer.start()
    await wait_for(lambda: all(v.frames >= 20 for v in (*on_b, on_c)), timeout=30)
    assert [v.served_by for v in on_b] == [b.url] * 3, [v.history for v in on_b]
    assert on_c.served_by == c.url, on_c.history
    assert await viewers_on(a.url, show_id) == 2  # one pull per edge
    assert await viewers_on(b.url, show_id) == 3

    before = {id(v): v.frames for v in (*on_b, on_c)}
    killed_at = time.monotonic()
    await asyncio.to_thread(b.kill)
    moved_in: list[float] = []

    async def back(viewer: RetryingViewer) -> None:
        await wait_for(
            lambda: viewer.served_by not in ("", b.url) and viewer.frames > before[id(viewer)] + 5, timeout=15
        )
        moved_in.append(time.monotonic() - killed_at)

    await asyncio.gather(*(back(v) for v in on_b))
    assert max(moved_in) < MOVE_WITHIN, moved_in
    assert all(v.served_by == c.url for v in on_b)  # the next process of the list
    # C's own viewer never noticed
    assert on_c.served_by == c.url and on_c.sessions == 1
    await wait_for(lambda: on_c.frames > before[id(on_c)] + 30)
    assert await viewers_on(c.url, show_id) == 4
    # the origin still counts B's dead pull until ICE consent fails (about 30 s): nothing more
    assert await viewers_on(a.url, show_id) == 2

    for viewer in (*on_b, on_c):
        await viewer.close()
    await pub.close()
