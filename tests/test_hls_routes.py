"""The /hls routes over a fake stream source: cache headers, blocking reload, refusals, redirects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from liveshow.hls import routes as hls_routes
from liveshow.hls.stream import HlsStream
from liveshow.hls.window import Part


class Source:
    def __init__(self) -> None:
        self.streams: dict[int, HlsStream] = {}
        self.owners: dict[int, str] = {}

    def stream(self, show_id: int) -> HlsStream | None:
        return self.streams.get(show_id)

    async def elsewhere(self, show_id: int) -> str | None:
        return self.owners.get(show_id)


def live_stream(show_id: int = 1) -> HlsStream:
    stream = HlsStream(show_id, audio=False, want_keyframe=lambda: None)
    stream.public = True
    stream.window.add_init(0, b"init")
    stream.window.open_segment(0, False, 0)
    stream.window.add_part(Part(0.2, True, b"p0"))
    return stream


def add_part(stream: HlsStream, data: bytes) -> None:
    stream.window.add_part(Part(0.2, False, data))
    stream._wake()


@pytest.fixture
async def web() -> AsyncIterator[tuple[httpx.AsyncClient, Source]]:
    source = Source()
    app = Starlette(routes=hls_routes.routes(source))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client, source


async def test_the_playlist_and_media_carry_cache_headers(web: tuple[httpx.AsyncClient, Source]) -> None:
    client, source = web
    stream = source.streams[1] = live_stream()
    playlist = await client.get("/hls/1/live.m3u8")
    assert playlist.status_code == 200
    assert playlist.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert playlist.headers["cache-control"] == "public, max-age=1"
    assert f'URI="{stream.key}/0.0.m4s"' in playlist.text
    for path, body in ((f"{stream.key}/0.0.m4s", b"p0"), (f"{stream.key}/init-0.mp4", b"init")):
        got = await client.get(f"/hls/1/{path}")
        assert (got.status_code, got.content) == (200, body)
        assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert got.headers["content-type"] == "video/mp4"
    stream.window.close_segment()
    segment = await client.get(f"/hls/1/{stream.key}/0.m4s")
    assert segment.content == b"p0" and "immutable" in segment.headers["cache-control"]


async def test_a_blocking_reload_is_held_until_its_part_exists(web: tuple[httpx.AsyncClient, Source]) -> None:
    client, source = web
    stream = source.streams[1] = live_stream()
    request = asyncio.create_task(client.get("/hls/1/live.m3u8", params={"_HLS_msn": 0, "_HLS_part": 1}))
    hinted = asyncio.create_task(client.get(f"/hls/1/{stream.key}/0.1.m4s"))
    await asyncio.sleep(0.2)
    assert not request.done() and not hinted.done()
    add_part(stream, b"p1")
    playlist, part = await asyncio.wait_for(asyncio.gather(request, hinted), 5)
    assert playlist.status_code == 200 and f"{stream.key}/0.1.m4s" in playlist.text
    assert playlist.headers["cache-control"] == "public, max-age=6"  # cacheable per query string
    assert part.content == b"p1"


async def test_a_part_that_never_comes_is_answered_in_bounded_time(
    web: tuple[httpx.AsyncClient, Source], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, source = web
    stream = source.streams[1] = live_stream()
    monkeypatch.setattr(hls_routes, "BLOCK_SECONDS", 0.3)
    waited = await client.get("/hls/1/live.m3u8", params={"_HLS_msn": 0, "_HLS_part": 2})
    assert waited.status_code == 503 and waited.headers["retry-after"] == "1"
    assert waited.headers["cache-control"] == "no-store"
    missing = await client.get(f"/hls/1/{stream.key}/0.1.m4s")
    assert missing.status_code == 404 and missing.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "query", ["_HLS_part=1", "_HLS_msn=x", "_HLS_msn=9", "_HLS_msn=0&_HLS_part=9", "_HLS_msn=-1"]
)
async def test_bad_reloads_are_refused(web: tuple[httpx.AsyncClient, Source], query: str) -> None:
    client, source = web
    source.streams[1] = live_stream()
    got = await client.get(f"/hls/1/live.m3u8?{query}")
    assert got.status_code == 400 and got.headers["cache-control"] == "no-store"
    assert got.json()["error"] == "invalid"


async def test_objects_outside_the_stream_are_not_found(web: tuple[httpx.AsyncClient, Source]) -> None:
    client, source = web
    stream = source.streams[1] = live_stream()
    for path in ("oldkey/0.0.m4s", f"{stream.key}/0.m4s", f"{stream.key}/init-3.mp4", f"{stream.key}/x.txt"):
        got = await client.get(f"/hls/1/{path}")
        assert got.status_code == 404 and got.headers["cache-control"] == "no-store", path


async def test_a_show_held_elsewhere_is_redirected_there(web: tuple[httpx.AsyncClient, Source]) -> None:
    client, source = web
    source.owners[2] = "http://proxy.example/p2"
    got = await client.get("/hls/2/live.m3u8?_HLS_msn=3&_HLS_part=1")
    assert got.status_code == 307
    assert got.headers["location"] == "http://proxy.example/p2/hls/2/live.m3u8?_HLS_msn=3&_HLS_part=1"
    assert got.headers["cache-control"] == "no-store"
    part = await client.get("/hls/2/abc/4.1.m4s")
    assert part.headers["location"] == "http://proxy.example/p2/hls/2/abc/4.1.m4s"


async def test_shows_not_live_private_or_vp8_are_refused(
    web: tuple[httpx.AsyncClient, Source], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hls_routes, "START_SECONDS", 0.05)
    client, source = web
    assert (await client.get("/hls/3/live.m3u8")).status_code == 404
    private = source.streams[4] = live_stream(4)
    private.public = False
    assert (await client.get("/hls/4/live.m3u8")).json()["error"] == "not_live"
    vp8 = source.streams[5] = live_stream(5)
    vp8.assembler.unsupported = "VP8"
    refused = await client.get("/hls/5/live.m3u8")
    assert refused.status_code == 409 and refused.json()["error"] == "hls_unavailable"
    empty = source.streams[6] = HlsStream(6, audio=False, want_keyframe=lambda: None)
    empty.public = True
    assert (await client.get("/hls/6/live.m3u8")).status_code == 404  # no video yet
    unknown = source.streams[7] = live_stream(7)
    unknown.public = None  # its show's lookup never answered
    assert (await client.get("/hls/7/live.m3u8")).json()["error"] == "not_live"


async def test_a_player_that_asks_as_the_show_begins_waits_for_its_lookup_and_first_segment(
    web: tuple[httpx.AsyncClient, Source],
) -> None:
    """The player asks as soon as the show is live: the stream exists, its show is still being looked
    up and no segment is made yet. The request waits for both rather than being refused (a 404 there
    cost the player a retry and a cache a negative answer)."""
    client, source = web
    stream = source.streams[8] = HlsStream(8, audio=False, want_keyframe=lambda: None)
    asked = asyncio.create_task(client.get("/hls/8/live.m3u8"))
    await asyncio.sleep(0.05)
    assert not asked.done()
    stream.set_public(True)  # the lookup answers; still no segment
    await asyncio.sleep(0.05)
    assert not asked.done()
    stream.window.add_init(0, b"init")
    stream.window.open_segment(0, False, 0)
    add_part(stream, b"p0")  # the first part wakes the request
    got = await asyncio.wait_for(asked, 2)
    assert got.status_code == 200 and "#EXT-X-PART:" in got.text
