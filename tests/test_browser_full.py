"""The player in Chromium when the process is full: it says so, waits for Retry-After, then plays."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from liveshow.app import create_app
from liveshow.shows.models import Show
from tests.conftest import LiveServer, make_settings
from tests.test_browser_video import PAGE, add_test_pages, frames_decoded, wait_until
from tests.test_whip_media import make_show

pytestmark = pytest.mark.browser


def webrtc_only_page(app: Any) -> Any:
    """The player without its HLS address: where HLS is served, a refused viewer falls back to it
    (player.js); here the WebRTC path's own answer to 503 is what is tested."""

    def handler(request: Request) -> Response:
        with app.state.ctx.db.session() as session:
            show = session.get(Show, int(request.path_params["show_id"]))
        if show is None:
            return Response(status_code=404)
        html = app.state.ctx.templates.env.from_string(PAGE).render(
            request=request, show=show, partial="_player.html", csrf=""
        )
        return HTMLResponse(re.sub(r' data-hls-url="[^"]*"', "", html))

    return handler


@pytest.fixture
def one_seat(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[LiveServer, Show]]:
    """A process that takes one viewer."""
    app = create_app(
        make_settings(tmp_path, sqlite_url, publisher_grace_seconds=30.0, max_viewers_per_process=1)
    )
    add_test_pages(app)
    app.router.routes.insert(0, Route("/test/webrtc-only/{show_id:int}", webrtc_only_page(app)))
    server = LiveServer(app).start()
    show, _ = make_show(app, "seller" + secrets.token_hex(3))
    yield server, show
    server.stop()


def test_a_refused_viewer_is_told_the_show_is_full_and_plays_once_a_seat_frees(
    browser: Any, one_seat: tuple[LiveServer, Show]
) -> None:
    server, show = one_seat
    studio_ctx = browser.new_context()
    studio_ctx.grant_permissions(["camera", "microphone"])
    studio = studio_ctx.new_page()
    first_ctx, second_ctx = browser.new_context(), browser.new_context()
    first, second = first_ctx.new_page(), second_ctx.new_page()
    try:
        studio.goto(f"{server.url}/test/studio/{show.id}")
        studio.wait_for_function("document.getElementById('studio-preview').videoWidth > 0")
        studio.get_by_role("button", name="Go live").click()
        studio.wait_for_function("document.getElementById('studio-connection').textContent === 'connected'")

        first.goto(f"{server.url}/test/show/{show.id}")
        wait_until(lambda: frames_decoded(first) > 0, timeout=30)

        second.goto(f"{server.url}/test/webrtc-only/{show.id}")
        second.wait_for_function(
            "/^Show is full, retrying in \\d+ s$/.test(document.getElementById('player-state').textContent)"
        )
        # The countdown starts at the server's Retry-After (10 s for a process full of viewers).
        assert second.locator("#player-state").inner_text() in {
            f"Show is full, retrying in {n} s" for n in (9, 10)
        }
        time.sleep(1.5)
        assert frames_decoded(first) > 0 and second.evaluate("window.liveshowPlayer.pc") is None

        first_ctx.close()  # the first viewer leaves (pagehide DELETEs its session): a seat is free
        wait_until(lambda: frames_decoded(second) > 10, timeout=30)
        assert second.locator("#player-state").inner_text() == "Live"
    finally:
        for ctx in (studio_ctx, first_ctx, second_ctx):
            try:
                ctx.close()
            except Exception:
                pass
