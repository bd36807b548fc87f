"""Edges: any process serves any show's viewers, pulling the show once from the process holding it.

Real server processes' apps (uvicorn, each in a thread with its own loop) on one Redis and one
database, a real aiortc publisher on the origin and decoding aiortc viewers on the edges. Killing an
edge is tested with separate OS processes in tests/test_media_edge_kill.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from liveshow.accounts.models import User
from liveshow.app import create_app
from liveshow.media import edgeauth
from liveshow.media.edgeregistry import RedisEdges
from liveshow.media.loadrecord import RedisLoadRecords
from liveshow.media.service import MediaService
from liveshow.shows.models import Show
from liveshow.signaling.client import Watcher, publish
from tests.conftest import REDIS_URL, LiveServer, free_port, make_settings
from tests.roomkit import session_cookie
from tests.test_media_cluster import Node
from tests.test_whip_media import make_show, wait_for

SECRET = "edge-test-secret"  # one cluster: every process shares the secret key


def start_node(tmp_path: Path, sqlite_url: str, prefix: str, name: str, **overrides: Any) -> Node:
    port = free_port()
    settings = make_settings(
        tmp_path / name,
        sqlite_url,
        bus_url=REDIS_URL,
        bus_prefix=prefix,
        secret_key=SECRET,
        advertise_url=f"http://127.0.0.1:{port}",
        publisher_grace_seconds=3.0,
        media_owner_ttl_seconds=2.0,
        media_edge_grace_seconds=0.5,
        media_edge_stall_seconds=1.0,
        **overrides,
    )
    app = create_app(settings)
    return Node(app, LiveServer(app, port=port).start())


class Trio:
    def __init__(self, nodes: list[Node], show: Show, token: str, prefix: str) -> None:
        self.a, self.b, self.c = nodes
        self.prefix = prefix
        self.nodes = nodes
        self.show = show
        self.token = token
        self.show_id = show.id or 0

    def whep(self, node: Node) -> str:
        return f"{node.url}/whep/{self.show_id}"


def trio(tmp_path: Path, sqlite_url: str, prefix: str, **overrides: Any) -> Iterator[Trio]:
    nodes = [start_node(tmp_path, sqlite_url, prefix, name, **overrides) for name in "abc"]
    show, token = make_show(nodes[0].app)
    yield Trio(nodes, show, token, prefix)
    for node in reversed(nodes):
        node.server.stop()


@pytest.fixture
def flat(tmp_path: Path, sqlite_url: str, redis_prefix: str) -> Iterator[Trio]:
    yield from trio(tmp_path, sqlite_url, redis_prefix)


@pytest.fixture
def tree(tmp_path: Path, sqlite_url: str, redis_prefix: str) -> Iterator[Trio]:
    yield from trio(tmp_path, sqlite_url, redis_prefix, media_edge_fanout=1)


class KeyframeCount:
    """Counts the keyframe requests (PLI/FIR) that reach the publisher's video sender."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.count = 0
        sender = next(t.sender for t in pc.getTransceivers() if t.kind == "video")
        original = sender._send_keyframe

        def counted() -> None:
            self.count += 1
            original()

        sender._send_keyframe = counted  # type: ignore[method-assign]


def media(node: Node) -> MediaService:
    return node.media


async def test_viewers_on_edges_decode_and_the_origin_pays_one_viewer_per_edge(flat: Trio) -> None:
    a, b, c, show_id = flat.a, flat.b, flat.c, flat.show_id
    pub, _ = await publish(f"{a.url}/whip/{show_id}", flat.show.stream_key)
    await wait_for(lambda: a.media.state(show_id) == "live")

    on_b = [Watcher(), Watcher()]
    on_c = Watcher()
    for watcher, node in ((on_b[0], b), (on_b[1], b), (on_c, c)):
        await watcher.watch(flat.whep(node))
        assert watcher.location.startswith(f"{node.url}/whep/{show_id}/")  # served there, no 307
    for watcher in (*on_b, on_c):
        await wait_for(lambda w=watcher: w.frames["video"] >= 20 and w.frames["audio"] >= 10)  # type: ignore[misc]
    assert {(320, 240)} == on_b[0].sizes == on_c.sizes
    # the origin relays to one viewer per edge; each edge to its own viewers
    assert a.media.viewer_count(show_id) == 2
    assert b.media.viewer_count(show_id) == 2 and c.media.viewer_count(show_id) == 1
    assert show_id not in b.media.shows and show_id not in c.media.shows  # neither claims the show
    assert b.media.edges.feeds[show_id].upstream == a.url.rstrip("/")
    registry = RedisEdges(REDIS_URL, flat.prefix, 2.0)  # the apps' clients belong to their own loops
    assert {e.url for e in await registry.edges(show_id)} == {b.url, c.url}
    async with httpx.AsyncClient() as http:
        status = (await http.get(f"{c.url}/api/shows/{show_id}/media")).json()
    assert status == {"id": show_id, "state": "live", "viewers": 1}
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{b.url}/metrics")).text
    assert "liveshow_edge_shows 1.0" in metrics and "liveshow_edge_viewers 2.0" in metrics
    assert "liveshow_edge_pulls_total 1.0" in metrics

    # the last viewer on C leaves: after its grace C drops its pull, and the origin its viewer
    await on_c.close()
    await wait_for(lambda: show_id not in c.media.edges.feeds, timeout=10)
    await wait_for(lambda: a.media.viewer_count(show_id) == 1, timeout=10)
    assert {e.url for e in await registry.edges(show_id)} == {b.url}
    await registry.close()
    before = on_b[1].frames["video"]
    await wait_for(lambda: on_b[1].frames["video"] > before + 10)  # B's viewers unharmed

    # the show ends on the origin: the edges let their viewers go
    async with httpx.AsyncClient(base_url=a.url) as http:
        resp = await http.post(f"/api/shows/{show_id}/end", headers={"Authorization": f"Bearer {flat.token}"})
    assert resp.status_code == 200
    await wait_for(lambda: show_id not in b.media.edges.feeds, timeout=15)
    assert b.media.viewer_count(show_id) == 0
    for watcher in on_b:
        await watcher.close(delete=False)
    await pub.close()


async def test_an_edge_of_an_edge_relays_and_keyframe_requests_reach_the_publisher(tree: Trio) -> None:
    a, b, c, show_id = tree.a, tree.b, tree.c, tree.show_id
    pub, _ = await publish(f"{a.url}/whip/{show_id}", tree.show.stream_key)
    keyframes = KeyframeCount(pub)
    await wait_for(lambda: a.media.state(show_id) == "live")

    on_b = Watcher()
    await on_b.watch(tree.whep(b))
    await wait_for(lambda: on_b.frames["video"] >= 10)
    on_c = Watcher()
    await on_c.watch(tree.whep(c))  # the origin has its one edge (fanout 1): C pulls from B
    await wait_for(lambda: on_c.frames["video"] >= 30 and on_c.frames["audio"] >= 10)
    assert c.media.edges.feeds[show_id].upstream == b.url
    assert c.media.edges.feeds[show_id].depth == 2
    assert a.media.viewer_count(show_id) == 1  # B only
    assert b.media.viewer_count(show_id) == 2  # its viewer and C's pull

    # a keyframe request from C's viewer goes up C -> B -> A -> the publisher
    pulled_b = b.media.edges.feeds[show_id].pull
    pulled_c = c.media.edges.feeds[show_id].pull
    assert pulled_b is not None and pulled_c is not None
    counts = (pulled_c.keyframe_requests, pulled_b.keyframe_requests, keyframes.count)
    receiver = next(t.receiver for t in on_c.pc.getTransceivers() if t.kind == "video")
    ssrc = next(iter(receiver._RTCRtpReceiver__remote_streams))  # type: ignore[attr-defined]
    await asyncio.sleep(0.6)  # past the relays' keyframe interval, so the request is not coalesced
    await receiver._send_rtcp_pli(ssrc)
    await wait_for(lambda: pulled_c.keyframe_requests > counts[0])
    await wait_for(lambda: pulled_b.keyframe_requests > counts[1])
    await wait_for(lambda: keyframes.count > counts[2])

    await on_c.close()
    await on_b.close()
    await pub.close()


async def _offer() -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    await pc.close()
    return sdp


@pytest.fixture
def capped(tmp_path: Path, sqlite_url: str, redis_prefix: str) -> Iterator[Trio]:
    # four watch requests a minute per address (cluster-wide, on Redis), one open session per address
    yield from trio(tmp_path, sqlite_url, redis_prefix, limit_whep_address="4/60", max_whep_per_address=1)


async def test_pulls_skip_browser_limits_but_need_the_clusters_token(capped: Trio) -> None:
    a, b, c, show_id = capped.a, capped.b, capped.c, capped.show_id
    pub, _ = await publish(f"{a.url}/whip/{show_id}", capped.show.stream_key)
    await wait_for(lambda: a.media.state(show_id) == "live")
    sdp_type = {"Content-Type": "application/sdp"}
    async with httpx.AsyncClient() as http:
        # a wrong token is refused before the offer is read (this body is no SDP at all)
        resp = await http.post(
            capped.whep(a),
            content=b"x" * 100,
            headers={"Content-Type": "text/plain", edgeauth.HEADER: "0" * 64},
        )
        assert resp.status_code == 401 and resp.json()["error"] == "not_authenticated"
        # a token for another show opens nothing either
        other = edgeauth.pull_token(SECRET, show_id + 1)
        resp = await http.post(
            capped.whep(a), content=await _offer(), headers={**sdp_type, edgeauth.HEADER: other}
        )
        assert resp.status_code == 401
    # two browsers on two edges, whose pulls come from the same address as the browsers: the two
    # refused pulls above counted against the limit, and had these pulls counted too, the second
    # browser would be over it; the origin's second pull would be over the one-session cap
    watchers = [Watcher(), Watcher()]
    await watchers[0].watch(capped.whep(b))
    await watchers[1].watch(capped.whep(c))
    for watcher in watchers:
        await wait_for(lambda w=watcher: w.frames["video"] >= 10)  # type: ignore[misc]
    assert a.media.viewer_count(show_id) == 2
    # while a browser still meets the limits, and so does a wrong token
    async with httpx.AsyncClient() as http:
        resp = await http.post(capped.whep(a), content=await _offer(), headers=sdp_type)
        assert resp.status_code == 429
        resp = await http.post(capped.whep(a), content=b"x", headers={edgeauth.HEADER: "0"})
        assert resp.status_code == 429
    for watcher in watchers:
        await watcher.close()
    await pub.close()


async def test_private_shows_stay_private_on_edges_and_a_full_edge_redirects(flat: Trio) -> None:
    a, b, show_id = flat.a, flat.b, flat.show_id
    with a.app.state.ctx.db.session() as session:
        show = session.get(Show, show_id)
        assert show is not None
        show.visibility = "private"
        session.add(show)
        session.commit()
    pub, _ = await publish(f"{a.url}/whip/{show_id}", flat.show.stream_key)
    await wait_for(lambda: a.media.state(show_id) == "live")
    async with httpx.AsyncClient() as http:
        resp = await http.post(
            flat.whep(b), content=await _offer(), headers={"Content-Type": "application/sdp"}
        )
    assert resp.status_code == 404  # the edge checks as the origin does, and pulls nothing for it
    assert show_id not in b.media.edges.feeds
    # the seller (signed in) may watch it anywhere
    seller = session_cookie(a.app.state.ctx.settings, User(id=flat.show.seller_id, username="seller"))
    async with httpx.AsyncClient() as http:
        resp = await http.post(
            flat.whep(b),
            content=await _offer(),
            headers={"Content-Type": "application/sdp", "Cookie": f"liveshow_session={seller}"},
        )
    assert resp.status_code == 201, resp.text
    assert len(a.media.shows[show_id].viewers) == 1  # B's pull (the offer B answered was never connected)

    # a process without headroom sends a new viewer to one with headroom by the load records, here the
    # origin (307 keeps the offer)
    b.media.has_headroom = lambda: False
    c = flat.c
    c.media.has_headroom = lambda: False
    loads = RedisLoadRecords(REDIS_URL, flat.prefix, 3.0)  # the apps' clients belong to their own loops
    for _ in range(100):  # until B's record says so too (written every second)
        if {load.url for load in await loads.live() if load.admit} == {a.url}:
            break
        await asyncio.sleep(0.1)
    await loads.stop()
    async with httpx.AsyncClient() as http:
        resp = await http.post(
            flat.whep(c),
            content=await _offer(),
            headers={"Content-Type": "application/sdp", "Cookie": f"liveshow_session={seller}"},
        )
    assert resp.status_code == 307 and resp.headers["location"] == f"{a.url}/whep/{show_id}?redirected=1"
    assert show_id not in c.media.edges.feeds
    await pub.close()


async def test_an_edge_pulls_again_from_elsewhere_when_its_feeder_goes(tree: Trio) -> None:
    a, b, c, show_id = tree.a, tree.b, tree.c, tree.show_id
    pub, _ = await publish(f"{a.url}/whip/{show_id}", tree.show.stream_key)
    await wait_for(lambda: a.media.state(show_id) == "live")
    on_b = Watcher()
    await on_b.watch(tree.whep(b))
    await wait_for(lambda: on_b.frames["video"] >= 10)
    on_c = Watcher()
    await on_c.watch(tree.whep(c))
    await wait_for(lambda: on_c.frames["video"] >= 10)
    assert c.media.edges.feeds[show_id].upstream == b.url

    await asyncio.to_thread(b.server.stop)  # C's feeder goes away
    await wait_for(lambda: c.media.edges.feeds[show_id].upstream == a.url, timeout=10)
    before = on_c.frames["video"]
    await wait_for(lambda: on_c.frames["video"] > before + 30)  # the same session, fed again
    assert c.media.edges.feeds[show_id].pulls == 2 and c.media.edges.feeds[show_id].depth == 1
    assert c.media.viewer_count(show_id) == 1
    await on_c.close()
    await on_b.close(delete=False)
    await pub.close()


async def mute_pulls(request: Request) -> Response:
    """Test-only, on the origin: stop sending to the show's viewers (the pulls) while their peers stay
    up, as a broken session would (run in the server's loop, which owns the relay)."""
    media = request.app.state.ctx.media.shows[int(request.path_params["show_id"])]
    for session_id in list(media.relay.outputs):
        media.relay.remove_output(session_id)
    return Response("ok")


async def test_an_edge_fed_nothing_while_the_publisher_sends_pulls_again(flat: Trio) -> None:
    a, b, show_id = flat.a, flat.b, flat.show_id
    a.app.router.routes.insert(0, Route("/test/mute/{show_id:int}", mute_pulls, methods=["POST"]))
    pub, _ = await publish(f"{a.url}/whip/{show_id}", flat.show.stream_key)
    await wait_for(lambda: a.media.state(show_id) == "live")
    on_b = Watcher()
    await on_b.watch(flat.whep(b))
    await wait_for(lambda: on_b.frames["video"] >= 10)
    first = b.media.edges.feeds[show_id].pull

    async with httpx.AsyncClient() as http:
        assert (await http.post(f"{a.url}/test/mute/{show_id}")).status_code == 200
    # the pull's peer stays connected, the publisher keeps sending: after twice the stall, a new pull
    await wait_for(lambda: b.media.edges.feeds[show_id].pull is not first, timeout=10)
    before = on_b.frames["video"]
    await wait_for(lambda: on_b.frames["video"] > before + 30)  # the same viewer session, fed again
    assert b.media.edges.feeds[show_id].pulls == 2
    await on_b.close()
    await pub.close()
