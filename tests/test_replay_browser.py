"""The replay page in headless Chromium: the chat and sales shown follow the playback position."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.settings import Settings
from tests.conftest import LiveServer, make_settings
from tests.test_replay import Recorded, record_show

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(tmp_path: Any, sqlite_url: str) -> Settings:
    return make_settings(tmp_path, sqlite_url)


def shown_chat(page: Any) -> list[str]:
    texts: list[str] = page.eval_on_selector_all("#replay-chat .text", "els => els.map(e => e.textContent)")
    return texts


def seek(page: Any, seconds: float) -> None:
    page.evaluate("s => window.liveshowReplay.seek(s)", seconds)
    page.wait_for_function(
        "s => Math.abs(document.getElementById('replay-video').currentTime - s) < 0.05", arg=seconds
    )


def test_chat_follows_playback_position(app: Starlette, page: Any) -> None:
    # Record with the app's lifespan in a test client, then serve it with uvicorn (one lifespan at a time).
    with TestClient(app, base_url="http://127.0.0.1") as client:
        recorded: Recorded = record_show(client, app, seconds=3.0)
    start_ms = int(recorded.recording.started_at.timestamp() * 1000)
    offset = {text: (ms - start_ms) / 1000 for text, ms in recorded.sent.items()}
    server = LiveServer(app).start()
    try:
        page.goto(f"{server.url}/shows/{recorded.show_id}/replay")
        page.wait_for_selector("#replay-root[data-ready='1']")
        page.wait_for_function("document.getElementById('replay-video').readyState >= 1")
        duration = page.evaluate("document.getElementById('replay-video').duration")
        assert abs(duration - recorded.recording.duration_ms / 1000) < 0.5
        assert shown_chat(page) == []

        seek(page, offset["last one"] + 0.05)
        assert shown_chat(page) == ["first!", "love it", "last one"]
        sales = page.eval_on_selector_all("#replay-sales li", "els => els.map(e => e.dataset.type)")
        assert sales == ["claim.accepted"]
        # Backwards: the later messages leave the panel.
        seek(page, offset["love it"] - 0.05)
        assert shown_chat(page) == ["first!"]
        seek(page, offset["love it"] + 0.05)
        assert shown_chat(page) == ["first!", "love it"]
        assert page.eval_on_selector_all("#replay-sales li", "els => els.length") == 0
        assert page.is_visible("#replay-card") and "The blue coat" in page.inner_text("#replay-card")

        # Chapters jump: back to the item.
        seek(page, 0)
        assert shown_chat(page) == []
        page.get_by_role("button", name="The blue coat").click()
        page.wait_for_function("document.getElementById('replay-chat').dataset.shown === '1'")
        assert shown_chat(page) == ["first!"]

        # Playing moves the chat along by itself.
        seek(page, offset["love it"] - 0.3)
        page.evaluate("document.getElementById('replay-video').play()")
        page.wait_for_function("document.getElementById('replay-chat').dataset.shown === '2'", timeout=5000)
        assert shown_chat(page)[-1] == "love it"
        page.evaluate("document.getElementById('replay-video').pause()")
        decoded = page.evaluate("document.getElementById('replay-video').webkitDecodedFrameCount")
        assert decoded > 0

        # A deep link with ?t= starts there.
        page.goto(f"{server.url}/shows/{recorded.show_id}/replay?t={offset['last one'] + 0.05:.2f}")
        page.wait_for_function("document.getElementById('replay-chat').dataset.shown === '3'")
    finally:
        server.stop()
