"""Headless Chromium: a chat message whose answer is "unavailable", or whose socket drops before the
answer, is sent again by room.js with the same key, shows "reconnecting…" meanwhile, keeps its text in
the input until acknowledged, and appears once on every page."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from starlette.applications import Starlette
from starlette.routing import Route

from liveshow.app import create_app
from liveshow.chat.models import ChatMessage
from liveshow.errors import DomainError
from tests.conftest import LiveServer, make_settings
from tests.roomkit import RoomEnv
from tests.test_browser_room import open_page, room_test_page

pytestmark = pytest.mark.browser


class Unavailable(DomainError):
    """The frame the server answers while a dependency is down (the room's "answer, don't drop")."""

    code = "unavailable"
    status = 503


@pytest.fixture
def served(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[RoomEnv, Starlette]]:
    settings = make_settings(tmp_path, sqlite_url)
    app = create_app(settings)
    app.router.routes.insert(0, Route("/test-room/{show_id:int}", room_test_page))
    server = LiveServer(app).start()
    room_env = RoomEnv(settings, server.url)
    yield room_env, app
    server.stop()
    room_env.db.close()


WATCH_STATUS = """() => {
  window.statusLog = [];
  const input = document.getElementById("room-input"), box = document.getElementById("room-status");
  liveshowRoom.on("status", (s) => window.statusLog.push([s.state, input.value, box.textContent]));
}"""


def texts(page: Any) -> list[str]:
    return list(page.locator("#room-chat .room-text").all_text_contents())


def test_a_chat_answered_unavailable_or_cut_off_is_resent_and_shown_once(
    browser: Any, served: tuple[RoomEnv, Starlette]
) -> None:
    env, app = served
    service = app.state.ctx.room
    publish = service.publish
    # What the next chat.message publishes do: "unavailable" (answered so), "slow" (held until the
    # test has dropped the page's socket, so the answer is lost).
    plan: list[str] = []
    attempts: list[str] = []
    socket_dropped = threading.Event()

    async def flaky_publish(show_id: int, type: str, data: dict[str, Any], durable: bool = False) -> Any:
        if type == "chat.message":
            attempts.append(data["text"])
            what = plan.pop(0) if plan else ""
            if what == "unavailable":
                raise Unavailable("The chat is catching up; sending again shortly.", retry_after_ms=300)
            if what == "slow":
                await asyncio.to_thread(socket_dropped.wait, 20)
        return await publish(show_id, type, data, durable=durable)

    service.publish = flaky_publish
    alice = open_page(browser, env, env.alice)
    bob = open_page(browser, env, env.bob)
    try:
        alice.evaluate(WATCH_STATUS)
        plan.extend(["unavailable", "unavailable"])
        alice.get_by_label("Chat message").fill("is the blue one left?")
        alice.get_by_role("button", name="Send").click()
        bob.locator("#room-chat .room-text", has_text="is the blue one left?").wait_for(timeout=15_000)
        alice.wait_for_function("document.getElementById('room-input').value === ''", timeout=15_000)
        alice.wait_for_function("document.getElementById('room-status').dataset.state === 'open'")
        assert attempts == ["is the blue one left?"] * 3
        log = alice.evaluate("window.statusLog")
        # While it was being sent again the page said so, and the text stayed in the input.
        assert ["reconnecting", "is the blue one left?", "reconnecting…"] in log, log

        # The socket drops before the answer: resent with the same key once the page is back. The
        # first attempt goes out when it is let go; if the resend came first, that is a second copy of
        # the same message (same id), which the pages show once.
        alice.evaluate("window.statusLog = []")
        plan.append("slow")
        alice.get_by_label("Chat message").fill("and in a medium?")
        alice.get_by_role("button", name="Send").click()
        deadline = time.monotonic() + 15
        while "and in a medium?" not in attempts:
            assert time.monotonic() < deadline, attempts
            time.sleep(0.02)
        alice.evaluate("liveshowRoom._dropConnection()")
        socket_dropped.set()
        bob.locator("#room-chat .room-text", has_text="and in a medium?").wait_for(timeout=20_000)
        alice.wait_for_function("document.getElementById('room-input').value === ''", timeout=20_000)
        assert attempts[3:] in (["and in a medium?"], ["and in a medium?"] * 2)
        assert any(
            state == "reconnecting" and value == "and in a medium?"
            for state, value, _ in alice.evaluate("window.statusLog")
        )

        wanted = ["is the blue one left?", "and in a medium?"]
        alice.locator("#room-chat .room-text", has_text="and in a medium?").wait_for()
        assert texts(bob) == wanted and texts(alice) == wanted
        with env.db.session() as session:
            rows = session.exec(select(ChatMessage).order_by(ChatMessage.id)).all()  # type: ignore[arg-type]
            assert [(r.text, r.published_seq is not None) for r in rows] == [(t, True) for t in wanted]
            assert len({r.client_key for r in rows}) == 2 and all(r.client_key for r in rows)

        # A message the server publishes a second time (a retry whose first answer was lost after the
        # event went out) is still shown once.
        first = rows[0]
        with env.db.session() as session:
            row = session.get(ChatMessage, first.id)
            assert row is not None
            row.published_seq = None  # as if recording its seq had failed
            session.add(row)
            session.commit()
        alice.evaluate(
            "(k) => liveshowRoom.send({type: 'chat.send', text: 'is the blue one left?', key: k})",
            first.client_key,
        )
        # (bob writes it: alice's resends have used up her 5 messages in 10 s.)
        bob.get_by_label("Chat message").fill("thanks!")
        bob.get_by_role("button", name="Send").click()
        # Events arrive in seq order: once "thanks!" is on screen, the second copy was handled before it.
        for page in (alice, bob):
            page.locator("#room-chat .room-text", has_text="thanks!").wait_for()
            assert texts(page) == [*wanted, "thanks!"]
        assert attempts.count("is the blue one left?") == 4  # it really was published again
    finally:
        alice.context.close()
        bob.context.close()
