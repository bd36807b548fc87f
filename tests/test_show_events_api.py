"""GET /api/shows/{id}/events: the show's archived log, paged, public events only, the show page's
visibility, 400 with a reason for a bad cursor or limit. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from liveshow import jsonwire
from liveshow.accounts.models import User
from liveshow.accounts.service import issue_token
from liveshow.db import Database
from liveshow.settings import Settings
from liveshow.showlog import ShowEvent
from liveshow.shows.models import Show
from liveshow.web.show_events import MAX_LIMIT
from tests.conftest import LiveServer
from tests.roomkit import RoomEnv, add_show


@pytest.fixture
def env(settings: Settings, live_server: LiveServer) -> Iterator[RoomEnv]:
    room_env = RoomEnv(settings, live_server.url)
    yield room_env
    room_env.db.close()


def archive(db: Database, show_id: int, events: list[tuple[int, str, dict[str, Any]]]) -> None:
    with db.session() as session:
        for seq, type, data in events:
            at = datetime.fromtimestamp((1_700_000_000_000 + seq) / 1000, UTC)
            session.add(ShowEvent(show_id=show_id, seq=seq, type=type, data=jsonwire.dumps(data), at=at))
        session.commit()


def get(env: RoomEnv, show_id: int, query: str = "", cookie: str | None = None) -> httpx.Response:
    cookies = {"liveshow_session": cookie} if cookie else None
    return httpx.get(f"{env.url}/api/shows/{show_id}/events{query}", cookies=cookies, timeout=10)


async def test_the_api_serves_the_frames_the_room_sent(env: RoomEnv) -> None:
    watcher, snap = await env.join_snapshot(None)
    alice, _ = await env.join_snapshot(env.alice)
    seller, _ = await env.join_snapshot(env.seller)
    for text in ("first", "second"):
        await alice.request({"type": "chat.send", "text": text, "key": f"events-{text}"})
    muted = await seller.request({"type": "mod.mute", "username": "bob", "minutes": 5})
    assert muted["type"] == "moderation.muted"  # a private event (to the staff and bob): never served
    await seller.request({"type": "mod.slow_mode", "seconds": 3})
    sent = [await watcher.until("chat.message") for _ in range(2)] + [await watcher.until("chat.slow_mode")]
    # The archive is written a few hundred ms behind the room: wait for it, with a deadline.
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        body = (await asyncio.to_thread(get, env, env.show_id, f"?after_seq={snap['seq']}")).json()
        if len(body["events"]) >= 3 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert body["events"] == sent
    assert body["next_after_seq"] == sent[-1]["seq"] and body["more"] is False
    assert all(e["type"] != "moderation.muted" for e in body["events"])
    assert body["state"] == "live"
    for peer in (watcher, alice, seller):
        await peer.close()


def test_pages_follow_the_cursor_and_skip_private_events(env: RoomEnv) -> None:
    events: list[tuple[int, str, dict[str, Any]]] = [
        (seq, "chat.message", {"id": seq, "text": f"m{seq}"}) for seq in range(1, 26)
    ]
    events[4] = (5, "notice", {"to": [env.alice.id], "kind": "claim_refused"})  # stored by an older build
    events[9] = (10, "presence", {"count": 3})
    archive(env.db, env.show_id, events)
    seen: list[int] = []
    after = 0
    pages = 0
    while True:
        response = get(env, env.show_id, f"?after_seq={after}&limit=10")
        assert response.status_code == 200 and response.headers["cache-control"] == "private, no-store"
        body = response.json()
        pages += 1
        seen += [e["seq"] for e in body["events"]]
        after = body["next_after_seq"]
        if not body["more"]:
            break
    assert pages == 3 and after == 25
    assert seen == [s for s in range(1, 26) if s not in (5, 10)]
    first = get(env, env.show_id, "?limit=1").json()["events"][0]
    assert first == {"type": "chat.message", "seq": 1, "ts": 1_700_000_000_001, "id": 1, "text": "m1"}
    # Past the end: an empty page whose cursor stays where the reader is.
    assert get(env, env.show_id, "?after_seq=99").json() | {"state": None} == {
        "show_id": env.show_id,
        "state": None,
        "events": [],
        "next_after_seq": 99,
        "more": False,
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?after_seq=-1", "after_seq"),
        ("?after_seq=abc", "after_seq"),
        ("?after_seq=1e3", "after_seq"),
        ("?after_seq=" + "9" * 19, "after_seq"),
        ("?after_seq=", "after_seq"),
        ("?limit=0", "limit"),
        (f"?limit={MAX_LIMIT + 1}", "limit"),
        ("?limit=ten", "limit"),
        ("?after_seq=%D9%A3", "after_seq"),  # an Arabic-Indic three: a digit to str.isdigit, not to us
    ],
)
def test_a_bad_cursor_or_limit_is_a_400_with_a_reason(env: RoomEnv, query: str, field: str) -> None:
    response = get(env, env.show_id, query)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid" and body["field"] == field and field in body["reason"]


def test_private_shows_are_the_sellers_alone_and_ended_shows_stay_readable(env: RoomEnv) -> None:
    private = add_show(env.db, env.seller, state="ended", title="Private")
    with env.db.session() as session:
        show = session.get(Show, private)
        assert show is not None
        show.visibility = "private"
        session.add(show)
        session.commit()
    archive(env.db, private, [(1, "chat.message", {"id": 1, "text": "secret"})])
    assert get(env, private).status_code == 404
    assert get(env, private, cookie=env.cookie(env.alice)).status_code == 404
    with env.db.session() as session:
        seller = session.get(User, env.seller.id)
        assert seller is not None
        token = issue_token(session, seller)
    by_token = httpx.get(
        f"{env.url}/api/shows/{private}/events", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert by_token.status_code == 200 and [e["text"] for e in by_token.json()["events"]] == ["secret"]
    own = get(env, private, cookie=env.cookie(env.seller))
    assert own.status_code == 200 and [e["text"] for e in own.json()["events"]] == ["secret"]
    assert own.json()["state"] == "ended"
    assert get(env, 999_999).status_code == 404
