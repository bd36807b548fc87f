"""Headless Chromium: two viewers chat and react through room.js, with markup shown as text."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from liveshow.app import create_app
from liveshow.web.auth import ctx, current_user
from tests.conftest import LiveServer, make_settings
from tests.roomkit import RoomEnv

pytestmark = pytest.mark.browser


def room_test_page(request: Request) -> HTMLResponse:
    """Test-only stand-in for the show page: the #show-root container, a stage and the _room partial."""
    user = current_user(request)
    show_id = request.path_params["show_id"]
    partial = ctx(request).templates.get_template("_room.html").render()
    return HTMLResponse(
        f"""<!doctype html><html><head><meta charset="utf-8"><title>room test</title>
<link rel="stylesheet" href="/static/style.css"></head><body>
<div class="show-layout" id="show-root" data-show-id="{show_id}" data-user-id="{user.id if user else ""}"
 data-role="viewer"><section class="stage"><div style="height:240px;background:#222"></div></section>
<aside class="side">{partial}</aside></div></body></html>"""
    )


@pytest.fixture
def env(tmp_path: Path, sqlite_url: str) -> Iterator[RoomEnv]:
    settings = make_settings(tmp_path, sqlite_url)
    app = create_app(settings)
    app.router.routes.insert(0, Route("/test-room/{show_id:int}", room_test_page))
    server = LiveServer(app).start()
    room_env = RoomEnv(settings, server.url)
    yield room_env
    server.stop()
    room_env.db.close()


def open_page(browser: Any, env: RoomEnv, user: Any) -> Any:
    context = browser.new_context()
    context.add_cookies([{"name": "liveshow_session", "value": env.cookie(user), "url": env.url}])
    page = context.new_page()
    page.goto(f"{env.url}/test-room/{env.show_id}")
    page.wait_for_function("document.getElementById('room-status').dataset.state === 'open'")
    return page


def test_two_viewers_chat_and_react(browser: Any, env: RoomEnv) -> None:
    alice = open_page(browser, env, env.alice)
    bob = open_page(browser, env, env.bob)
    try:
        payload = "<script>window.pwned = 1</script><b>bold?</b>"
        alice.get_by_label("Chat message").fill(payload)
        alice.get_by_role("button", name="Send").click()
        bob_line = bob.locator("#room-chat .room-text", has_text="bold?")
        bob_line.wait_for()
        assert bob_line.text_content() == payload
        assert bob.locator("#room-chat b, #room-chat script").count() == 0
        assert bob.evaluate("window.pwned") is None and alice.evaluate("window.pwned") is None
        # The input clears on alice's own acknowledgement, which may come after bob's copy of the line.
        alice.wait_for_function("document.getElementById('room-input').value === ''", timeout=10_000)

        bob.get_by_label("Chat message").fill("hi alice")
        bob.get_by_role("button", name="Send").click()
        alice.locator("#room-chat .room-text", has_text="hi alice").wait_for()
        assert alice.locator("#room-chat .room-text").all_text_contents() == [payload, "hi alice"]

        # Reactions: taps become a burst floating over the video on the other page.
        for _ in range(3):
            bob.get_by_role("button", name="Heart reaction").click()
        alice.locator(".stage .room-bursts .room-burst[data-kind=heart]").first.wait_for()

        alice.wait_for_function("document.getElementById('room-viewer-count').textContent === '2'")

        # Anonymous visitors read but cannot write.
        anon_context = browser.new_context()
        anon = anon_context.new_page()
        anon.goto(f"{env.url}/test-room/{env.show_id}")
        anon.locator("#room-chat .room-text", has_text="hi alice").wait_for()
        assert anon.get_by_label("Chat message").is_disabled()
        anon_context.close()
    finally:
        alice.context.close()
        bob.context.close()


def test_reconnect_resumes_without_duplicates_and_clock_is_synced(browser: Any, env: RoomEnv) -> None:
    alice = open_page(browser, env, env.alice)
    bob = open_page(browser, env, env.bob)
    try:
        alice.get_by_label("Chat message").fill("before the drop")
        alice.get_by_role("button", name="Send").click()
        bob.locator(".room-text", has_text="before the drop").wait_for()
        bob.evaluate("liveshowRoom._dropConnection()")
        for text in ("while away 1", "while away 2"):
            alice.get_by_label("Chat message").fill(text)
            alice.get_by_role("button", name="Send").click()
            alice.locator(".room-text", has_text=text).wait_for()
        bob.locator(".room-text", has_text="while away 2").wait_for(timeout=20_000)
        assert bob.locator("#room-chat .room-text").all_text_contents() == [
            "before the drop",
            "while away 1",
            "while away 2",
        ]
        # The server clock estimate: same machine, so it must match this clock closely.
        bob.wait_for_function("liveshowRoom.clockSynced()")
        estimate = bob.evaluate("liveshowRoom.serverNow()")
        assert abs(estimate - time.time() * 1000) < 50
        # The seller gets the moderation menu; a viewer does not.
        seller = open_page(browser, env, env.seller)
        seller.locator(".room-text", has_text="while away 2").wait_for()
        assert seller.locator("#room-mod").is_visible()
        assert bob.locator("#room-mod").is_hidden()
        seller.locator(".room-msg", has_text="while away 1").locator("summary").click()
        seller.get_by_role("button", name="Delete").click()
        bob.wait_for_function(
            "!Array.from(document.querySelectorAll('.room-text')).some(n => n.textContent === 'while away 1')"
        )
        seller.context.close()
    finally:
        alice.context.close()
        bob.context.close()


def test_two_viewers_chat_and_react_on_the_real_show_page(browser: Any, env: RoomEnv) -> None:
    """The same through /shows/{id} itself: the room partial among the player and the item card."""

    def viewer(user: Any) -> Any:
        context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        context.add_cookies([{"name": "liveshow_session", "value": env.cookie(user), "url": env.url}])
        page = context.new_page()
        page.goto(f"{env.url}/shows/{env.show_id}")
        page.wait_for_function("document.getElementById('room-status').dataset.state === 'open'")
        return page

    alice, bob = viewer(env.alice), viewer(env.bob)
    try:
        assert alice.locator("#show-root").get_attribute("data-role") == "viewer"
        alice.get_by_label("Chat message").fill("love the jacket")
        alice.get_by_role("button", name="Send").click()
        bob.locator("#room-chat .room-text", has_text="love the jacket").wait_for()
        bob.get_by_label("Chat message").fill("same!")
        bob.get_by_role("button", name="Send").click()
        alice.locator("#room-chat .room-text", has_text="same!").wait_for()
        assert alice.locator("#room-chat .room-text").all_text_contents() == ["love the jacket", "same!"]
        bob.get_by_role("button", name="Fire reaction").click()
        alice.locator(".stage .room-bursts .room-burst[data-kind=fire]").first.wait_for()
        alice.wait_for_function("document.getElementById('room-viewer-count').textContent === '2'")
        # the chat input stays on screen at phone width, beside nothing, under the video
        box = alice.get_by_label("Chat message").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    finally:
        alice.context.close()
        bob.context.close()
