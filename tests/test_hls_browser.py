"""The HLS fallback in headless Chromium: the studio publishes H.264 over WHIP (studio_video = "h264",
and the server follows the offer's codec order); with the show capped at one WebRTC viewer, a second
viewer is refused (503) and plays the show's LL-HLS rendition through hls.js, saying which latency mode
each is in; a third whose WebRTC keeps failing falls back too."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from liveshow.app import create_app
from liveshow.shows.models import Show
from tests.conftest import LiveServer, make_settings
from tests.test_browser_video import add_test_pages, frames_decoded, wait_until
from tests.test_whip_media import make_show

pytestmark = pytest.mark.browser


@pytest.fixture
def capped_stage(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[LiveServer, Show]]:
    app = create_app(
        make_settings(
            tmp_path, sqlite_url, publisher_grace_seconds=30.0, max_whep_per_show=1, studio_video="h264"
        )
    )
    add_test_pages(app)
    server = LiveServer(app).start()
    show, _ = make_show(app, "seller" + secrets.token_hex(3))
    yield server, show
    server.stop()


def go_live(browser: Any, url: str, show_id: int) -> Any:
    context = browser.new_context()
    context.grant_permissions(["camera", "microphone"])
    studio = context.new_page()
    studio.goto(f"{url}/test/studio/{show_id}")
    studio.wait_for_function("document.getElementById('studio-preview').videoWidth > 0")
    studio.get_by_role("button", name="Go live").click()
    studio.wait_for_function("document.getElementById('studio-connection').textContent === 'connected'")
    return context


def position(page: Any) -> float:
    return float(page.evaluate("document.getElementById('player-video').currentTime"))


def test_a_viewer_refused_webrtc_plays_hls(browser: Any, capped_stage: tuple[LiveServer, Show]) -> None:
    server, show = capped_stage
    studio = go_live(browser, server.url, show.id or 0)
    first_ctx, second_ctx, third_ctx = browser.new_context(), browser.new_context(), browser.new_context()
    first, second = first_ctx.new_page(), second_ctx.new_page()
    refused: list[int] = []
    second.on(
        "response",
        lambda r: refused.append(r.status) if "/whep/" in r.url and r.request.method == "POST" else None,
    )
    try:
        first.goto(f"{server.url}/test/show/{show.id}")
        wait_until(lambda: frames_decoded(first) > 0, timeout=30)
        wait_until(lambda: first.locator("#player-mode").inner_text() == "live, sub-second", timeout=10)
        assert first.evaluate("window.liveshowPlayer.mode") == "webrtc"

        second.goto(f"{server.url}/test/show/{show.id}")
        wait_until(lambda: position(second) > 2.0, timeout=30)
        assert refused == [503]  # the show is full: one WHEP offer, then HLS
        assert second.evaluate("window.liveshowPlayer.mode") == "hls"
        assert second.evaluate("document.getElementById('player').dataset.hlsReason") == "full"
        wait_until(lambda: "s delay" in second.locator("#player-mode").inner_text(), timeout=10)
        # Low-latency mode took: hls.js read the parts and blocking reload, and aims 1 s behind the
        # live edge, not three segments; the latency reached on a loaded machine is bench/hls.py's.
        # (The aim as configured: hls.js's targetLatency grows by a second with each stall, which a
        # loaded machine causes.)
        details = second.evaluate(
            """() => { const h = window.liveshowPlayer.hls; const d = h.levels[h.currentLevel].details;
               return [h.lowLatencyMode, d.canBlockReload, d.partTarget, d.partHoldBack,
                       h.config.liveSyncDuration]; }"""
        )
        assert details == [True, True, pytest.approx(0.334), pytest.approx(1.002), pytest.approx(1.0)]
        played = position(second)
        wait_until(lambda: position(second) > played + 1.0, timeout=10)  # it keeps playing

        # WebRTC that keeps failing (here: WHEP unreachable) also ends in HLS, after three tries
        third = third_ctx.new_page()
        third.route("**/whep/**", lambda route: route.abort())
        third.goto(f"{server.url}/test/show/{show.id}")
        wait_until(lambda: position(third) > 1.0, timeout=40)
        assert third.evaluate("document.getElementById('player').dataset.hlsReason") == "failed"
    finally:
        studio.close()
        first_ctx.close()
        second_ctx.close()
        third_ctx.close()
