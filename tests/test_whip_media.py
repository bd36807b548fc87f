"""Real aiortc peers through our WHIP and WHEP endpoints: the viewer decodes, the relay decodes nothing."""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import httpx
import pytest
from starlette.applications import Starlette

from liveshow.accounts.service import create_user, issue_token
from liveshow.app import create_app
from liveshow.media.service import MediaService
from liveshow.shows.models import Show
from liveshow.signaling.client import Watcher, publish
from tests.conftest import LiveServer, make_settings


class Codecs:
    """Counts decoder/encoder creations, attributing each to the receiver queue or sender that asked."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.decoder_queues: list[Any] = []
        self.encoder_senders: list[Any] = []
        real_decoder = aiortc.rtcrtpreceiver.get_decoder
        real_encoder = aiortc.rtcrtpsender.get_encoder

        def get_decoder(codec: Any) -> Any:
            self.decoder_queues.append(sys._getframe(1).f_locals.get("input_q"))
            return real_decoder(codec)

        def get_encoder(codec: Any) -> Any:
            self.encoder_senders.append(sys._getframe(1).f_locals.get("self"))
            return real_encoder(codec)

        monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", get_decoder)
        monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", get_encoder)


@pytest.fixture
def codecs(monkeypatch: pytest.MonkeyPatch) -> Codecs:
    return Codecs(monkeypatch)


class Stage:
    def __init__(self, app: Starlette, server: LiveServer, show: Show, seller_token: str) -> None:
        self.app = app
        self.server = server
        self.show = show
        self.seller_token = seller_token
        self.whip = f"{server.url}/whip/{show.id}"
        self.whep = f"{server.url}/whep/{show.id}"
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def media(self) -> MediaService:
        service = self.app.state.ctx.media
        assert service is not None
        return service

    def db_show(self) -> Show:
        with self.app.state.ctx.db.session() as session:
            show = session.get(Show, self.show.id)
            assert show is not None
            return show


def make_show(app: Starlette, username: str = "seller", **fields: Any) -> tuple[Show, str]:
    with app.state.ctx.db.session() as session:
        user = create_user(session, username, "correct horse battery")
        token = issue_token(session, user)
        assert user.id is not None
        show = Show(seller_id=user.id, title="Spring closet", stream_key=secrets.token_urlsafe(24), **fields)
        session.add(show)
        session.commit()
        session.refresh(show)
        return show, token


@pytest.fixture
def stage(tmp_path: Path, sqlite_url: str) -> Iterator[Stage]:
    yield from staged_server(tmp_path, sqlite_url)


def staged_server(tmp_path: Path, sqlite_url: str) -> Iterator[Stage]:
    """A live server with a seller's scheduled show (shared by the media test modules)."""
    app = create_app(make_settings(tmp_path, sqlite_url, publisher_grace_seconds=2.0))
    loops: list[asyncio.AbstractEventLoop] = []

    async def remember_loop() -> None:
        loops.append(asyncio.get_running_loop())

    app.state.ctx.on_startup.append(remember_loop)
    server = LiveServer(app).start()
    show, token = make_show(app)
    staged = Stage(app, server, show, token)
    staged.loop = loops[0]
    yield staged
    server.stop()


async def wait_for(predicate: Any, timeout: float = 15.0, step: float = 0.05) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_publish_and_watch_without_transcoding(stage: Stage, codecs: Codecs, codec: str) -> None:
    pub, location = await publish(stage.whip, stage.show.stream_key, codec=codec)
    await wait_for(lambda: stage.media.state(stage.show.id or 0) == "live")
    assert stage.db_show().state == "live" and stage.db_show().went_live_at is not None

    watcher = Watcher()
    await watcher.watch(stage.whep)
    await wait_for(lambda: watcher.frames["video"] >= 30 and watcher.frames["audio"] >= 20)
    assert watcher.sizes == {(320, 240)}
    assert stage.media.viewer_count(stage.show.id or 0) == 1

    media = stage.media.shows[stage.show.id or 0]
    assert media.codecs == {"video": codec, "audio": "opus"}
    server_senders = [t.sender for v in media.viewers.values() for t in v.pc.getTransceivers()]
    assert server_senders and not [s for s in codecs.encoder_senders if s in server_senders]
    # Exact counts over the whole process (server, publisher and viewer share it): the viewer's two
    # decoders and the publisher's two encoders, nothing else. aiortc makes a decoder only when a frame
    # reaches a receiver's queue, and the relay's receivers got every frame the viewer did, so a relay
    # that decoded would add its own here.
    viewer_queues = [t.receiver._RTCRtpReceiver__decoder_queue for t in watcher.pc.getTransceivers()]
    assert len(codecs.decoder_queues) == 2, codecs.decoder_queues
    assert all(any(q is v for v in viewer_queues) for q in codecs.decoder_queues)
    assert len(codecs.encoder_senders) == 2, codecs.encoder_senders
    assert all(any(s is p for p in pub.getSenders()) for s in codecs.encoder_senders)
    for sender in server_senders:
        assert sender._RTCRtpSender__encoder is None

    await watcher.close()
    await wait_for(lambda: stage.media.viewer_count(stage.show.id or 0) == 0)
    async with httpx.AsyncClient() as http:
        assert (await http.delete(location)).status_code == 200
    await pub.close()
    await wait_for(lambda: stage.media.state(stage.show.id or 0) == "reconnecting")
