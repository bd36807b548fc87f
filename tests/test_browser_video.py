"""Headless Chromium publishes from the studio partial via WHIP; a second page plays via WHEP."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from liveshow.accounts.models import User
from liveshow.app import create_app
from liveshow.shows.models import Show
from liveshow.web.auth import csrf_token, sign_in
from tests.conftest import LiveServer, make_settings
from tests.test_whip_media import make_show

pytestmark = pytest.mark.browser

# Test-only pages: the real pages belong to another feature; these render our partials the same way.
PAGE = """<!doctype html><html><head><meta name="csrf-token" content="{{ csrf }}"></head><body>
{% include partial %}</body></html>"""


def add_test_pages(app: Any) -> None:
    templates = app.state.ctx.templates

    def page(partial: str, sign_in_seller: bool) -> Any:
        def handler(request: Request) -> Response:
            with app.state.ctx.db.session() as session:
                show = session.get(Show, int(request.path_params["show_id"]))
                seller = session.get(User, show.seller_id) if show else None
            if show is None or seller is None:
                return Response(status_code=404)
            if sign_in_seller:
                sign_in(request, seller)
            html = templates.env.from_string(PAGE).render(
                request=request,
                show=show,
                partial=partial,
                csrf=csrf_token(request),
                studio_video=app.state.ctx.settings.studio_video,
            )
            return HTMLResponse(html)

        return handler

    app.router.routes.insert(0, Route("/test/studio/{show_id:int}", page("_studio_media.html", True)))
    app.router.routes.insert(0, Route("/test/show/{show_id:int}", page("_player.html", False)))


@pytest.fixture
def browser_stage(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[LiveServer, Show]]:
    app = create_app(make_settings(tmp_path, sqlite_url, publisher_grace_seconds=30.0))
    add_test_pages(app)
    server = LiveServer(app).start()
    show, _ = make_show(app, "seller" + secrets.token_hex(3))
    yield server, show
    server.stop()


def frames_decoded(page: Any) -> int:
    return int(
        page.evaluate(
            """async () => {
                const pc = window.liveshowPlayer && window.liveshowPlayer.pc;
                if (!pc) return 0;
                let n = 0;
                (await pc.getStats()).forEach((s) => {
                    if (s.type === "inbound-rtp" && s.kind === "video") n += s.framesDecoded || 0;
                });
                return n;
            }"""
        )
    )


def wait_until(fn: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_studio_publishes_and_a_viewer_plays(browser: Any, browser_stage: tuple[LiveServer, Show]) -> None:
    server, show = browser_stage
    studio_ctx = browser.new_context()
    studio_ctx.grant_permissions(["camera", "microphone"])
    studio = studio_ctx.new_page()
    viewer_ctx = browser.new_context()
    viewer = viewer_ctx.new_page()
    offers: list[str] = []  # WHEP offers the viewer posts
    viewer.on("request", lambda r: offers.append(r.url) if r.method == "POST" and "/whep/" in r.url else None)
    try:
        viewer.goto(f"{server.url}/test/show/{show.id}")
        assert viewer.locator("#player-state").inner_text() == "Starting soon"
        # a show that has not started is not asked for media (it may be days away): the player waits
        # for the show to go live, and only then makes an offer
        time.sleep(1.5)
        assert offers == []
        assert viewer.get_by_role("link", name="Watch the replay").is_hidden()

        studio.goto(f"{server.url}/test/studio/{show.id}")
        studio.wait_for_function("document.getElementById('studio-preview').videoWidth > 0")
        studio.get_by_role("button", name="Go live").click()
        studio.wait_for_function("document.getElementById('studio-connection').textContent === 'connected'")
        wait_until(lambda: studio.locator("#studio-bitrate").inner_text() not in ("0 kbps", ""))

        # the viewer notices the show is live and plays it
        wait_until(lambda: frames_decoded(viewer) > 0, timeout=30)
        assert len(offers) >= 1
        first = frames_decoded(viewer)
        time.sleep(1.5)
        assert frames_decoded(viewer) > first + 10
        viewer.wait_for_function("document.getElementById('player').dataset.playing === '1'")
        assert viewer.locator("#player-unmute").is_visible()
        wait_until(lambda: studio.locator("#studio-viewers").inner_text() == "1", timeout=10)

        studio.get_by_role("button", name="End show").click()
        studio.wait_for_function("document.getElementById('studio-state-badge').textContent === 'Show ended'")
        wait_until(lambda: viewer.locator("#player-state").inner_text() == "Show ended", timeout=10)
        replay = viewer.get_by_role("link", name="Watch the replay")
        replay.wait_for(state="visible", timeout=5000)
        assert replay.get_attribute("href") == f"/shows/{show.id}/replay"
    finally:
        studio_ctx.close()
        viewer_ctx.close()


def test_refused_camera_is_explained(browser: Any, browser_stage: tuple[LiveServer, Show]) -> None:
    server, show = browser_stage
    context = browser.new_context()  # no camera permission granted...
    page = context.new_page()
    # ...and the fake-UI flag auto-accepts, so refuse explicitly the way a user's "Block" does.
    page.add_init_script(
        "navigator.mediaDevices.getUserMedia = () =>"
        " Promise.reject(new DOMException('denied', 'NotAllowedError'));"
    )
    try:
        page.goto(f"{server.url}/test/studio/{show.id}")
        page.wait_for_function("!document.getElementById('studio-error').hidden")
        assert "refused" in page.locator("#studio-error").inner_text()
        assert page.get_by_role("button", name="Go live").is_disabled()
    finally:
        context.close()
