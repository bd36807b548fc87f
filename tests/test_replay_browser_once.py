"""The replay page shows a chat message once even when the archive holds its event twice (a chat send
retried after a lost answer may publish the stored message again, under a later seq)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.settings import Settings
from liveshow.showlog import ShowEvent
from tests.conftest import LiveServer, make_settings
from tests.test_replay import Recorded, context_of, record_show
from tests.test_replay_browser import seek, shown_chat

pytestmark = pytest.mark.browser


@pytest.fixture
def settings(tmp_path: Any, sqlite_url: str) -> Settings:
    return make_settings(tmp_path, sqlite_url)


def test_a_message_published_twice_is_shown_once(app: Starlette, page: Any) -> None:
    with TestClient(app, base_url="http://127.0.0.1") as client:
        recorded: Recorded = record_show(client, app, seconds=3.0)
    context = context_of(app)
    with context.db.session() as session:
        rows = session.exec(
            select(ShowEvent).where(ShowEvent.show_id == recorded.show_id).order_by(col(ShowEvent.seq))
        ).all()
        first = next(r for r in rows if r.type == "chat.message")
        # The same message again, published 0.4 s later under the show's next seq.
        session.add(
            ShowEvent(
                show_id=recorded.show_id,
                seq=rows[-1].seq + 1,
                type="chat.message",
                data=first.data,
                at=first.at + timedelta(milliseconds=400),
            )
        )
        session.commit()
    start_ms = int(recorded.recording.started_at.timestamp() * 1000)
    last = (recorded.sent["last one"] - start_ms) / 1000
    server = LiveServer(app).start()
    try:
        page.goto(f"{server.url}/shows/{recorded.show_id}/replay")
        page.wait_for_selector("#replay-root[data-ready='1']")
        page.wait_for_function("document.getElementById('replay-video').readyState >= 1")
        seek(page, last + 0.05)
        assert shown_chat(page) == ["first!", "love it", "last one"]
        seek(page, 0)
        seek(page, last + 0.05)  # forward again, appended one by one
        assert shown_chat(page) == ["first!", "love it", "last one"]
    finally:
        server.stop()
