"""The player starts over when its server goes silent (a killed process sends nothing, not even a
DTLS close): Chromium says "disconnected" within seconds but "failed" only when ICE consent runs out
(30 s); the player reconnects after 1.5 s disconnected, and the new offer (through a load balancer, to a
live process) plays again. Here the same process answers the new offer: the old session's sockets are
aborted on the server, which is what the browser sees of a process killed."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from liveshow.app import create_app
from liveshow.shows.models import Show
from tests.conftest import LiveServer, make_settings
from tests.test_browser_video import add_test_pages, frames_decoded, wait_until
from tests.test_whip_media import make_show

pytestmark = pytest.mark.browser

BACK_WITHIN = 10.0  # seconds from the silence to a new session decoding (consent alone would take 30)


async def silence(request: Request) -> Response:
    """Test-only: abort every UDP socket of the show's viewer sessions, sending nothing more (run in
    the server's loop, which owns them)."""
    media = request.app.state.ctx.media
    aborted = 0
    for viewer in list(media.shows[int(request.path_params["show_id"])].viewers.values()):
        for transceiver in viewer.pc.getTransceivers():
            connection = transceiver.sender.transport.transport._connection
            for protocol in list(connection._protocols):
                protocol.transport.abort()
                aborted += 1
    return Response(str(aborted))


@pytest.fixture
def stage(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[LiveServer, Show]]:
    app = create_app(make_settings(tmp_path, sqlite_url, publisher_grace_seconds=30.0))
    add_test_pages(app)
    app.router.routes.insert(0, Route("/test/silence/{show_id:int}", silence, methods=["POST"]))
    server = LiveServer(app).start()
    show, _ = make_show(app, "seller" + secrets.token_hex(3))
    yield server, show
    server.stop()


def test_a_silent_server_makes_the_player_start_over(browser: Any, stage: tuple[LiveServer, Show]) -> None:
    server, show = stage
    studio_ctx = browser.new_context()
    studio_ctx.grant_permissions(["camera", "microphone"])
    studio = studio_ctx.new_page()
    viewer_ctx = browser.new_context()
    viewer = viewer_ctx.new_page()
    try:
        studio.goto(f"{server.url}/test/studio/{show.id}")
        studio.wait_for_function("document.getElementById('studio-preview').videoWidth > 0")
        studio.get_by_role("button", name="Go live").click()
        studio.wait_for_function("document.getElementById('studio-connection').textContent === 'connected'")
        viewer.goto(f"{server.url}/test/show/{show.id}")
        wait_until(lambda: frames_decoded(viewer) > 10, timeout=30)
        viewer.evaluate("() => { window.firstPeer = window.liveshowPlayer.pc; }")

        assert httpx.post(f"{server.url}/test/silence/{show.id}").text != "0"
        silenced_at = time.monotonic()
        wait_until(
            lambda: (
                viewer.evaluate("() => window.liveshowPlayer.pc !== window.firstPeer")
                and frames_decoded(viewer) > 10
            ),
            timeout=BACK_WITHIN + 5,
        )
        took = time.monotonic() - silenced_at
        assert took < BACK_WITHIN, took
    finally:
        studio_ctx.close()
        viewer_ctx.close()
