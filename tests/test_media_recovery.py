"""Restart recovery: a show left ``live`` in the database with no publisher anywhere gets its grace
period when a server starts: ``reconnecting`` is announced, and the show ends when the grace runs out
unless the publisher comes back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from starlette.applications import Starlette

from liveshow.app import create_app
from liveshow.media.service import MediaService
from liveshow.showlog import archived_events
from liveshow.shows.models import Show
from liveshow.signaling.client import Watcher, publish
from tests.conftest import REDIS_URL, LiveServer, free_port, make_settings
from tests.test_whip_media import make_show, wait_for


def server(tmp_path: Path, url: str, **overrides: object) -> tuple[Starlette, LiveServer]:
    port = free_port()
    settings = make_settings(
        tmp_path, url, publisher_grace_seconds=2.0, advertise_url=f"http://127.0.0.1:{port}", **overrides
    )
    app = create_app(settings)
    return app, LiveServer(app, port=port).start()


def media(app: Starlette) -> MediaService:
    service = app.state.ctx.media
    assert service is not None
    return service


def show_state(app: Starlette, show_id: int) -> str:
    with app.state.ctx.db.session() as session:
        show = session.get(Show, show_id)
        assert show is not None
        return show.state


def announced(app: Starlette, show_id: int) -> list[str]:
    with app.state.ctx.db.session() as session:
        events = archived_events(session, show_id)
    return [json.loads(e.data)["state"] for e in events if e.type == "show.state"]


async def go_live_then_stop(tmp_path: Path, url: str, **overrides: object) -> Show:
    """A first server: the show goes live with a real publisher, then the server shuts down."""
    app, first = server(tmp_path / "first", url, **overrides)
    show, _ = make_show(app)
    pub, _location = await publish(f"{first.url}/whip/{show.id}", show.stream_key)
    await wait_for(lambda: media(app).state(show.id or 0) == "live")
    first.stop()
    await pub.close()
    assert show_state(app, show.id or 0) == "live"
    return show


async def test_left_live_after_restart_ends_when_grace_runs_out(tmp_path: Path, sqlite_url: str) -> None:
    show = await go_live_then_stop(tmp_path, sqlite_url)
    show_id = show.id or 0
    app, second = server(tmp_path / "second", sqlite_url)
    try:
        assert media(app).state(show_id) == "reconnecting"  # at startup, before any request
        await wait_for(lambda: announced(app, show_id)[-1:] == ["reconnecting"])
        assert show_state(app, show_id) == "live"
        await wait_for(lambda: show_state(app, show_id) == "ended", timeout=8)
        await wait_for(lambda: announced(app, show_id) == ["live", "reconnecting", "ended"])
        assert media(app).state(show_id) is None
    finally:
        second.stop()


async def test_publisher_back_after_restart_resumes(tmp_path: Path, sqlite_url: str) -> None:
    show = await go_live_then_stop(tmp_path, sqlite_url)
    show_id = show.id or 0
    app, second = server(tmp_path / "second", sqlite_url)
    try:
        assert media(app).state(show_id) == "reconnecting"
        pub, _ = await publish(f"{second.url}/whip/{show_id}", show.stream_key)
        await wait_for(lambda: media(app).state(show_id) == "live")
        watcher = Watcher()
        await watcher.watch(f"{second.url}/whep/{show_id}")
        await wait_for(lambda: watcher.frames["video"] >= 10)
        await asyncio.sleep(2.5)  # past the grace period
        assert show_state(app, show_id) == "live" and media(app).state(show_id) == "live"
        assert announced(app, show_id) == ["live", "reconnecting", "live"]
        await watcher.close()
        await pub.close()
    finally:
        second.stop()


async def test_process_starting_beside_a_live_publisher_leaves_it_alone(
    tmp_path: Path, sqlite_url: str, redis_prefix: str
) -> None:
    redis = {"bus_url": REDIS_URL, "bus_prefix": redis_prefix, "media_owner_ttl_seconds": 2.0}
    app_a, a = server(tmp_path / "a", sqlite_url, **redis)
    show, _ = make_show(app_a)
    show_id = show.id or 0
    pub, _ = await publish(f"{a.url}/whip/{show_id}", show.stream_key)
    await wait_for(lambda: media(app_a).state(show_id) == "live")
    app_b, b = server(tmp_path / "b", sqlite_url, **redis)
    try:
        await asyncio.sleep(2.5)  # past B's startup sweep and one grace period
        assert media(app_b).state(show_id) is None and show_state(app_b, show_id) == "live"
        assert media(app_a).state(show_id) == "live"
        # A goes away without its publisher coming back: B recovers the show on its next sweep (every TTL)
        a.stop()
        await pub.close()
        await wait_for(lambda: media(app_b).state(show_id) == "reconnecting", timeout=10)
        await wait_for(lambda: show_state(app_b, show_id) == "ended", timeout=8)
    finally:
        b.stop()
