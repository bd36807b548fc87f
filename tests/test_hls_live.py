"""LL-HLS from a real WHIP publisher (aiortc, H.264 and Opus) on a live server: the rendition decodes,
segments are cut at keyframes the server asked for, a blocking reload returns once its part exists,
and what has no HLS (VP8, private shows, ended shows) says so."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest

from liveshow.shows.models import Show
from tests.test_whip_media import Stage, publish, staged_server, wait_for


@pytest.fixture
def stage(tmp_path: Path, sqlite_url: str) -> Iterator[Stage]:
    yield from staged_server(tmp_path, sqlite_url)


async def playlist_of(http: httpx.AsyncClient, stage: Stage) -> str:
    got = await http.get(f"{stage.server.url}/hls/{stage.show.id}/live.m3u8")
    return got.text if got.status_code == 200 else ""


async def test_a_published_show_has_a_decodable_ll_hls_rendition(stage: Stage) -> None:
    # The publisher runs on this test's event loop: every request here is async, never blocking it.
    pub, _ = await publish(stage.whip, stage.show.stream_key, codec="H264")
    base = f"{stage.server.url}/hls/{stage.show.id}"
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            text = ""
            for _ in range(300):
                text = await playlist_of(http, stage)
                if text.count("#EXTINF:") >= 3:
                    break
                await asyncio.sleep(0.1)
            assert text.count("#EXTINF:") >= 3, text
            # keyframes came when the server asked (every ~2 s): no segment was forced at 4 s
            durations = [float(d) for d in re.findall(r"#EXTINF:([\d.]+),", text)]
            assert all(1.5 <= d < 4.0 for d in durations), durations
            lines = text.splitlines()
            assert any("INDEPENDENT=YES" in line for line in lines), text
            init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', text)
            assert init is not None
            segments = [line for line in lines if line.endswith(".m4s") and not line.startswith("#")]
            data = (await http.get(f"{base}/{init[1]}")).content
            for uri in segments:
                data += (await http.get(f"{base}/{uri}")).content
            with av.open(io.BytesIO(data)) as container:
                assert {s.type for s in container.streams} == {"video", "audio"}
                assert sum(1 for _ in container.decode(video=0)) >= 30

            # a blocking reload for the hinted part returns when that part exists, and lists it
            hint = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="[^"]*/(\d+)\.(\d+)\.m4s"', text)
            assert hint is not None
            msn, index = hint[1], hint[2]
            held = await http.get(f"{base}/live.m3u8", params={"_HLS_msn": msn, "_HLS_part": index})
            assert held.status_code == 200
            assert f"/{msn}.{index}.m4s" in held.text or f"/{int(msn) + 1}.0.m4s" in held.text
    finally:
        await pub.close()


async def answer(http: httpx.AsyncClient, url: str, status: int, tries: int = 100) -> httpx.Response:
    """GET ``url`` until it answers ``status`` (the first frames are on their way), at most ``tries``."""
    for _ in range(tries):
        got = await http.get(url)
        if got.status_code == status:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} kept answering {got.status_code}: {got.text[:200]}")


async def test_vp8_and_ended_shows_have_no_hls(stage: Stage) -> None:
    pub, _ = await publish(stage.whip, stage.show.stream_key, codec="VP8")
    show_id = stage.show.id or 0
    url = f"{stage.server.url}/hls/{show_id}/live.m3u8"
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            refused = await answer(http, url, 409)
            assert refused.json()["error"] == "hls_unavailable"
            assert stage.media.shows[show_id].codecs["video"] == "VP8"
            ended = await http.post(
                f"{stage.server.url}/api/shows/{show_id}/end",
                headers={"Authorization": f"Bearer {stage.seller_token}"},
            )
            assert ended.status_code == 200
            gone = await http.get(url)
            assert gone.status_code == 404 and gone.headers["cache-control"] == "no-store"
    finally:
        await pub.close()


async def test_a_private_show_has_no_hls(stage: Stage) -> None:
    show_id = stage.show.id or 0
    with stage.app.state.ctx.db.session() as session:
        show = session.get(Show, show_id)
        assert show is not None
        show.visibility = "private"
        session.add(show)
        session.commit()
    pub, _ = await publish(stage.whip, stage.show.stream_key, codec="H264")
    try:
        await wait_for(
            lambda: show_id in stage.media.shows and stage.media.shows[show_id].relay.frames_in > 90
        )
        async with httpx.AsyncClient(timeout=10) as http:
            got = await http.get(f"{stage.server.url}/hls/{show_id}/live.m3u8")
        assert got.status_code == 404 and got.json()["error"] == "not_live"
    finally:
        await pub.close()
