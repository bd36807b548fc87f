"""End to end (issue #20): a show published with aiortc through WHIP is recorded while its PostgreSQL
(a private one) crashes and comes back mid-show; once the show ends its replay is there and covers the
whole show, bounded by what the publisher sent."""

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

from bench.services import PrivatePostgres
from liveshow.accounts.service import create_user, issue_token
from liveshow.app import create_app
from liveshow.replay.models import Recording
from liveshow.shows.models import Show
from tests.conftest import LiveServer, make_settings

pytest.importorskip("liveshow.media.service")
client_mod = pytest.importorskip("liveshow.signaling.client")

BEFORE_S, DOWN_S, AFTER_S = 3.0, 4.0, 3.0


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # the database may still be coming back
            pass
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def test_replay_covers_the_whole_show_across_a_database_crash(
    tmp_path: Path, private_pg: PrivatePostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Progress reports (row writes) every second instead of 10: some of them land in the outage.
    monkeypatch.setattr("liveshow.media.recorder.PROGRESS_EVERY", 1.0)
    app = create_app(make_settings(tmp_path, private_pg.new_database(), publisher_grace_seconds=2.0))
    server = LiveServer(app).start()
    context = app.state.ctx
    try:
        with context.db.session() as session:
            seller = create_user(session, "seller", "correct horse battery")
            token = issue_token(session, seller)
            show = Show(seller_id=seller.id, title="Crash sale", stream_key=secrets.token_urlsafe(24))
            session.add(show)
            session.commit()
            session.refresh(show)
        auth = {"Authorization": f"Bearer {token}"}

        def recording() -> Recording | None:
            with context.db.session() as session:
                return session.exec(select(Recording).where(Recording.show_id == show.id)).first()

        sent: list[float] = []

        async def publish_through_a_crash() -> None:
            started = time.monotonic()
            pc, _location = await client_mod.publish(f"{server.url}/whip/{show.id}", show.stream_key)
            await wait_for(lambda: context.media.state(show.id) == "live")
            await wait_for(lambda: recording() is not None)
            await asyncio.sleep(BEFORE_S)
            await asyncio.to_thread(private_pg.crash)
            await asyncio.sleep(DOWN_S)
            await asyncio.to_thread(private_pg.start)
            await asyncio.sleep(AFTER_S)
            async with httpx.AsyncClient() as http:
                deadline = time.monotonic() + 20
                while (
                    resp := await http.post(f"{server.url}/api/shows/{show.id}/end", headers=auth)
                ).status_code == 503:
                    assert time.monotonic() < deadline, resp.text
                    await asyncio.sleep(0.2)
                assert resp.status_code == 200, resp.text
            sent.append(time.monotonic() - started)
            await pc.close()
            await wait_for(lambda: (r := recording()) is not None and r.status == "complete")

        asyncio.run(publish_through_a_crash())
        row = recording()
        assert row is not None
        with context.db.session() as session:
            assert len(session.exec(select(Recording).where(Recording.show_id == show.id)).all()) == 1
        path = context.recordings.directory / row.path
        with av.open(str(path)) as media:
            duration = media.duration / 1e6 if media.duration else 0.0
        # The whole show, not the part before the crash: at least what was live on both sides of it,
        # at most what the publisher sent before the show ended.
        least = BEFORE_S + DOWN_S + AFTER_S - 0.5
        assert least < duration < sent[0] + 0.5, (duration, sent)
        assert abs(row.duration_ms / 1000 - duration) < 0.5, (row.duration_ms, duration)
        replay = httpx.get(f"{server.url}/shows/{show.id}/replay")
        assert replay.status_code == 200, replay.text[:300]
    finally:
        server.stop()
