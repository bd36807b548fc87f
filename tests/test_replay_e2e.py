"""End to end with the live relay: publish 10 s with aiortc through WHIP, end the show, check the recording
with PyAV; then re-air it and watch the rerun with an aiortc viewer that decodes frames.

Needs the media service (liveshow.media.service, WHIP/WHEP); skipped on a branch without it."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from sqlmodel import select

from liveshow.accounts.service import create_user, issue_token
from liveshow.app import create_app
from liveshow.replay.models import ReAir, Recording
from liveshow.shows.models import Show
from tests.conftest import LiveServer, make_settings

pytest.importorskip("liveshow.media.service")
client_mod = pytest.importorskip("liveshow.signaling.client")


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(("codec", "container", "vname"), [("H264", "mp4", "h264"), ("VP8", "webm", "vp8")])
def test_publish_record_and_reair(
    tmp_path: Path, sqlite_url: str, codec: str, container: str, vname: str
) -> None:
    app = create_app(make_settings(tmp_path, sqlite_url, publisher_grace_seconds=2.0))
    server = LiveServer(app).start()
    context = app.state.ctx
    try:
        with context.db.session() as session:
            seller = create_user(session, "seller", "correct horse battery")
            token = issue_token(session, seller)
            show = Show(seller_id=seller.id, title="Spring closet", stream_key=secrets.token_urlsafe(24))
            session.add(show)
            session.commit()
            session.refresh(show)
        auth = {"Authorization": f"Bearer {token}"}

        def recording() -> Recording | None:
            with context.db.session() as session:
                return session.exec(select(Recording).where(Recording.show_id == show.id)).first()

        sent: list[float] = []  # how long the publisher was sending before the show had ended

        async def publish_ten_seconds() -> None:
            started = time.monotonic()
            pc, _location = await client_mod.publish(
                f"{server.url}/whip/{show.id}", show.stream_key, codec=codec
            )
            await wait_for(lambda: context.media.state(show.id) == "live")
            await asyncio.sleep(10.3)
            async with httpx.AsyncClient() as http:
                resp = await http.post(f"{server.url}/api/shows/{show.id}/end", headers=auth)
                assert resp.status_code == 200, resp.text
            sent.append(time.monotonic() - started)
            await pc.close()
            await wait_for(lambda: (r := recording()) is not None and r.status == "complete")

        asyncio.run(publish_ten_seconds())
        row = recording()
        assert row is not None and row.container == container
        path = context.recordings.directory / row.path
        with av.open(str(path)) as media:
            assert {s.type: s.codec_context.name for s in media.streams} == {"video": vname, "audio": "opus"}
            # (kind, pts seconds, dts, keyframe), read while the container is open
            packets = [
                (p.stream.type, float(p.pts * p.time_base), p.dts, p.is_keyframe)
                for p in media.demux()
                if p.dts is not None
            ]
            duration = media.duration / 1e6 if media.duration else row.duration_ms / 1000
        video = [p for p in packets if p[0] == "video"]
        audio = [p for p in packets if p[0] == "audio"]
        # Everything sent while live is kept and nothing else: at least the 10 s, at most what the
        # publisher sent until the end was taken (more than 10.3 s on a busy machine).
        assert 9.5 < duration < sent[0] + 0.5, (duration, sent)
        assert video[0][3] is True
        for stream_packets in (video, audio):
            dts = [p[2] for p in stream_packets]
            assert dts == sorted(dts) and len(set(dts)) == len(dts)
        assert abs(video[0][1] - audio[0][1]) < 0.1

        async def reair() -> None:
            async with httpx.AsyncClient() as http:
                resp = await http.post(f"{server.url}/api/shows/{show.id}/reair", json={}, headers=auth)
            assert resp.status_code == 201, resp.text
            rerun_id = resp.json()["id"]
            await wait_for(lambda: context.media.state(rerun_id) == "live")
            watcher = client_mod.Watcher()
            await watcher.watch(f"{server.url}/whep/{rerun_id}")
            await wait_for(
                lambda: watcher.frames["video"] >= 30 and watcher.frames["audio"] >= 20, timeout=15
            )
            await watcher.close()
            await wait_for(lambda: _reair_status(rerun_id) == "done", timeout=20)

        def _reair_status(show_id: int) -> str:
            with context.db.session() as session:
                r = session.exec(select(ReAir).where(ReAir.show_id == show_id)).first()
                return r.status if r is not None else ""

        asyncio.run(reair())
    finally:
        server.stop()
