"""Show lifecycle with real peers: live, reconnecting, resume, end by the seller, end by grace."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from liveshow.media.frames import EncodedFrame
from liveshow.showlog import archived_events
from liveshow.signaling.client import Watcher, publish
from tests.test_whip_media import Stage, staged_server, wait_for


@pytest.fixture
def stage(tmp_path: Path, sqlite_url: str) -> Iterator[Stage]:
    yield from staged_server(tmp_path, sqlite_url)


def announced(stage: Stage) -> list[str]:
    with stage.app.state.ctx.db.session() as session:
        events = archived_events(session, stage.show.id or 0)
    return [json.loads(e.data)["state"] for e in events if e.type == "show.state"]


class Recorder:
    def __init__(self) -> None:
        self.frames: list[EncodedFrame] = []
        self.closed = False

    def on_frame(self, frame: EncodedFrame) -> None:
        self.frames.append(frame)

    def close(self) -> None:
        self.closed = True


async def test_drop_resume_and_end_by_seller(stage: Stage) -> None:
    show_id = stage.show.id or 0
    sinks: list[Recorder] = []

    def factory(sid: int) -> Recorder:
        assert sid == show_id
        sinks.append(Recorder())
        return sinks[-1]

    stage.media.sink_factories.append(factory)
    pub, location = await publish(stage.whip, stage.show.stream_key)
    await wait_for(lambda: stage.media.state(show_id) == "live")
    watcher = Watcher()
    await watcher.watch(stage.whep)
    await wait_for(lambda: watcher.frames["video"] >= 10)

    # the publisher leaves: reconnecting, viewers stay
    async with httpx.AsyncClient() as http:
        assert (await http.delete(location)).status_code == 200
    await pub.close()
    await wait_for(lambda: stage.media.state(show_id) == "reconnecting")
    assert stage.db_show().state == "live"
    await asyncio.sleep(0.3)

    # a republish within the grace period resumes the same show for the same viewer
    before = watcher.frames["video"]
    pub2, _ = await publish(stage.whip, stage.show.stream_key)
    await wait_for(lambda: stage.media.state(show_id) == "live")
    await wait_for(lambda: watcher.frames["video"] > before + 20)
    await asyncio.sleep(2.5)  # past the grace period: the resume cancelled the timer
    assert stage.media.state(show_id) == "live"

    # the seller ends it with an API token
    async with httpx.AsyncClient(base_url=stage.server.url) as http:
        resp = await http.post(
            f"/api/shows/{show_id}/end", headers={"Authorization": f"Bearer {stage.seller_token}"}
        )
        assert resp.status_code == 200 and resp.json()["state"] == "ended"
    await wait_for(lambda: watcher.pc.connectionState in ("closed", "failed"), timeout=40)
    show = stage.db_show()
    assert show.state == "ended" and show.ended_at is not None
    assert stage.media.shows == {}
    await wait_for(lambda: announced(stage) == ["live", "reconnecting", "live", "ended"])

    # one sink for the whole show, fed across the republish, closed at the end; pts never go back
    assert len(sinks) == 1 and sinks[0].closed
    video = [f for f in sinks[0].frames if f.kind == "video"]
    audio = [f for f in sinks[0].frames if f.kind == "audio"]
    assert video[0].keyframe and all(b.pts > a.pts for a, b in itertools.pairwise(video))
    assert all(b.pts > a.pts for a, b in itertools.pairwise(audio))
    # audio and video share the show clock: their last timestamps agree within half a second
    assert abs(video[-1].pts / 90000 - audio[-1].pts / 48000) < 0.5
    await watcher.close(delete=False)
    await pub2.close()


async def test_grace_runs_out(stage: Stage) -> None:
    show_id = stage.show.id or 0
    pub, _ = await publish(stage.whip, stage.show.stream_key)
    await wait_for(lambda: stage.media.state(show_id) == "live")
    await pub.close()  # gone without a DELETE
    await wait_for(lambda: stage.media.state(show_id) == "reconnecting", timeout=40)
    await wait_for(lambda: stage.db_show().state == "ended", timeout=10)
    await wait_for(lambda: announced(stage) == ["live", "reconnecting", "ended"])


async def test_reair_source_feeds_viewers(stage: Stage) -> None:
    """A recording can be re-aired: frames pushed through open_source reach WHEP viewers."""
    show_id = stage.show.id or 0
    captured = Recorder()
    pub, location = await publish(stage.whip, stage.show.stream_key)
    await wait_for(lambda: stage.media.state(show_id) == "live")
    stage.media.shows[show_id].relay.sinks.append(captured)
    await wait_for(lambda: sum(f.kind == "video" for f in captured.frames) >= 60)
    async with httpx.AsyncClient() as http:
        await http.delete(location)
    await pub.close()
    await wait_for(lambda: stage.media.state(show_id) == "reconnecting")
    video = [f for f in captured.frames if f.kind == "video"]
    first_key = next(i for i, f in enumerate(video) if f.keyframe)
    replay = video[first_key:]

    async def reair() -> None:  # runs on the server's loop, where the relay lives
        source = await stage.media.open_source(show_id, "VP8", None)
        requests: list[int] = []
        source.on_keyframe_request = lambda: requests.append(1)
        await wait_for(lambda: stage.media.viewer_count(show_id) > 0)
        for frame in replay:
            source.push(frame)
            await asyncio.sleep(1 / 30)
        assert requests  # the joining viewer asked for a keyframe
        await source.close(end_show=True)

    assert stage.loop is not None
    done = asyncio.run_coroutine_threadsafe(reair(), stage.loop)
    await wait_for(lambda: stage.media.state(show_id) == "live")
    watcher = Watcher()
    await watcher.watch(stage.whep)
    await wait_for(lambda: watcher.frames["video"] >= 20, timeout=20)
    await asyncio.wrap_future(done)
    await wait_for(lambda: stage.db_show().state == "ended")
    await watcher.close(delete=False)
