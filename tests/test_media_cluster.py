"""Two real server processes (uvicorn apps) sharing Redis and one database: a viewer may hit either.

The process holding a show's publisher registers itself; WHEP on the other, when it has no headroom,
answers 307 to it (else it serves the viewer as an edge: tests/test_media_edges.py), a second
WHIP publisher there gets 409, show state changes reach both through the bus, a republish during the
grace period may land on the other process (it takes the show over), and ending the show from the
process without the publisher stops the publisher.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiortc import RTCPeerConnection
from starlette.applications import Starlette

from liveshow.app import create_app
from liveshow.bus.redis import RedisBus
from liveshow.media.service import MediaService
from liveshow.shows.models import Show
from liveshow.signaling.client import PatternTrack, Watcher, publish
from tests.conftest import REDIS_URL, LiveServer, free_port, make_settings
from tests.test_whip_media import make_show, wait_for


class Node:
    def __init__(self, app: Starlette, server: LiveServer) -> None:
        self.app = app
        self.server = server
        self.url = server.url

    @property
    def media(self) -> MediaService:
        service = self.app.state.ctx.media
        assert service is not None
        return service


class Cluster:
    def __init__(self, a: Node, b: Node, show: Show, token: str, prefix: str) -> None:
        self.a, self.b, self.show, self.token, self.prefix = a, b, show, token, prefix
        self.show_id = show.id or 0

    def db_state(self) -> str:
        with self.a.app.state.ctx.db.session() as session:
            show = session.get(Show, self.show_id)
            assert show is not None
            return show.state


def start_node(tmp_path: Path, sqlite_url: str, prefix: str, name: str) -> Node:
    port = free_port()
    settings = make_settings(
        tmp_path / name,
        sqlite_url,
        bus_url=REDIS_URL,
        bus_prefix=prefix,
        advertise_url=f"http://127.0.0.1:{port}",
        publisher_grace_seconds=3.0,
        media_owner_ttl_seconds=2.0,
    )
    app = create_app(settings)
    return Node(app, LiveServer(app, port=port).start())


@pytest.fixture
def cluster(tmp_path: Path, sqlite_url: str, redis_prefix: str) -> Iterator[Cluster]:
    a = start_node(tmp_path, sqlite_url, redis_prefix, "a")
    b = start_node(tmp_path, sqlite_url, redis_prefix, "b")
    show, token = make_show(a.app)
    yield Cluster(a, b, show, token, redis_prefix)
    b.server.stop()
    a.server.stop()


async def states_seen(sub_bus: RedisBus, topic: str, into: list[str]) -> None:
    sub = sub_bus.subscribe(topic)
    try:
        async for event in sub:
            if event.type == "show.state":
                into.append(event.data["state"])
    finally:
        sub.close()


async def test_viewer_on_any_process(cluster: Cluster) -> None:
    a, b, show_id = cluster.a, cluster.b, cluster.show_id
    bus = RedisBus(REDIS_URL, prefix=cluster.prefix)
    seen: list[str] = []
    listener = asyncio.create_task(states_seen(bus, f"show:{show_id}", seen))
    await asyncio.sleep(0.2)

    pub, _location = await publish(f"{a.url}/whip/{show_id}", cluster.show.stream_key)
    await wait_for(lambda: a.media.state(show_id) == "live")

    # B holds nothing and has no headroom: it points the viewer at A, the one process whose load record
    # takes viewers, keeping the method (307), and relays nothing itself (with headroom it serves the
    # viewer as an edge: tests/test_media_edges.py)
    b.media.has_headroom = lambda: False
    offer = await _offer("recvonly")
    async with httpx.AsyncClient() as http:
        resp = await http.post(
            f"{b.url}/whep/{show_id}",
            content=offer.localDescription.sdp,
            headers={"Content-Type": "application/sdp"},
        )
    await offer.close()
    assert resp.status_code == 307
    assert resp.headers["location"] == f"{a.url}/whep/{show_id}?redirected=1"
    assert resp.headers["access-control-allow-origin"] == "*"

    watcher = Watcher()
    await watcher.watch(f"{b.url}/whep/{show_id}")
    assert watcher.location.startswith(f"{a.url}/whep/{show_id}/")
    await wait_for(lambda: watcher.frames["video"] >= 20 and watcher.frames["audio"] >= 10)
    assert a.media.viewer_count(show_id) == 1 and b.media.viewer_count(show_id) == 0
    assert show_id not in b.media.shows

    # a second publisher on B, while A has a live one: 409, A's show unharmed
    async with httpx.AsyncClient() as http:
        pc2 = await _offer("sendonly")
        resp = await http.post(
            f"{b.url}/whip/{show_id}",
            content=pc2.localDescription.sdp,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {cluster.show.stream_key}"},
        )
        await pc2.close()
    assert resp.status_code == 409 and resp.json()["error"] == "publisher_exists"
    before = watcher.frames["video"]
    await wait_for(lambda: watcher.frames["video"] > before + 10)

    # the seller ends the show on B: A lets its publisher and viewers go
    async with httpx.AsyncClient(base_url=b.url) as http:
        resp = await http.post(
            f"/api/shows/{show_id}/end", headers={"Authorization": f"Bearer {cluster.token}"}
        )
    assert resp.status_code == 200
    await wait_for(lambda: show_id not in a.media.shows, timeout=10)
    await wait_for(lambda: pub.connectionState in ("closed", "failed"), timeout=30)
    assert cluster.db_state() == "ended"
    await wait_for(lambda: seen[-1:] == ["ended"])
    assert seen == ["live", "ended"]

    await watcher.close(delete=False)
    await pub.close()
    listener.cancel()
    await bus.close()


async def test_republish_on_the_other_process_takes_the_show_over(cluster: Cluster) -> None:
    a, b, show_id = cluster.a, cluster.b, cluster.show_id
    key = cluster.show.stream_key
    pub, location = await publish(f"{a.url}/whip/{show_id}", key)
    await wait_for(lambda: a.media.state(show_id) == "live")
    async with httpx.AsyncClient() as http:
        assert (await http.delete(location)).status_code == 200
    await pub.close()
    await wait_for(lambda: a.media.state(show_id) == "reconnecting")

    # within the grace period the publisher comes back, through B this time
    pub2, _ = await publish(f"{b.url}/whip/{show_id}", key)
    await wait_for(lambda: b.media.state(show_id) == "live")
    await wait_for(lambda: show_id not in a.media.shows, timeout=5)  # A noticed and let go
    a.media.has_headroom = lambda: False
    watcher = Watcher()
    await watcher.watch(f"{a.url}/whep/{show_id}")  # redirected to B
    assert watcher.location.startswith(f"{b.url}/")
    await wait_for(lambda: watcher.frames["video"] >= 20)
    await asyncio.sleep(3.5)  # past A's grace period: A's timer must not have ended the show
    assert cluster.db_state() == "live" and b.media.state(show_id) == "live"
    await watcher.close()
    await pub2.close()


async def _offer(direction: str) -> RTCPeerConnection:
    pc = RTCPeerConnection()
    if direction == "sendonly":
        pc.addTransceiver(PatternTrack(), direction="sendonly")
    else:
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc
