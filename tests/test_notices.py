"""Notices: the centre, preferences (the user's alone), follower and liker fan-out over the room topic."""

from __future__ import annotations

import time
from typing import Any

from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.bus import Event
from liveshow.showlog import show_topic
from liveshow.social.models import Notice
from tests.test_social_support import act_as, app_ctx, make_listing, make_show, make_user, wait_until_watched


def wait_for_notices(
    app: Starlette, user_id: int, kind: str, count: int = 1, timeout: float = 5
) -> list[Notice]:
    deadline = time.monotonic() + timeout
    while True:
        with app_ctx(app).db.session() as session:
            rows = list(session.exec(select(Notice).where(Notice.user_id == user_id, Notice.kind == kind)))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def next_event(client: TestClient, sub: Any, type_: str, timeout: float = 5) -> Event:
    deadline = time.monotonic() + timeout
    while True:
        event: Event = client.portal.call(sub.get, max(0.1, deadline - time.monotonic()))
        if event.type == type_:
            return event


def test_preferences_are_the_users_own(app: Starlette, client: TestClient) -> None:
    ann, bob = make_user(app, "ann"), make_user(app, "bob")
    h = act_as(client, ann)
    prefs = client.get("/api/notices/preferences").json()["preferences"]
    assert all(prefs.values()) and "show_live" in prefs
    resp = client.put("/api/notices/preferences", json={"preferences": {"show_live": False}}, headers=h)
    assert resp.json()["preferences"]["show_live"] is False

    # Bob can't reach Ann's preferences: naming a user is refused, his change is his own.
    h = act_as(client, bob)
    body = {"user_id": ann.id, "preferences": {"show_live": True}}
    assert client.put("/api/notices/preferences", json=body, headers=h).status_code == 400
    client.put("/api/notices/preferences", json={"preferences": {"offer": False}}, headers=h)
    # Bad input: unknown kind, non-bool, not an object, no CSRF, signed out.
    assert (
        client.put("/api/notices/preferences", json={"preferences": {"spam": True}}, headers=h).status_code
        == 400
    )
    assert (
        client.put("/api/notices/preferences", json={"preferences": {"offer": "no"}}, headers=h).status_code
        == 400
    )
    assert (
        client.put("/api/notices/preferences", json={"preferences": ["offer"]}, headers=h).status_code == 400
    )
    assert client.put("/api/notices/preferences", json={"preferences": {"offer": True}}).status_code == 403
    act_as(client, None)
    assert client.get("/api/notices/preferences").status_code == 401

    act_as(client, ann)
    ann_prefs = client.get("/api/notices/preferences").json()["preferences"]
    assert ann_prefs["show_live"] is False and ann_prefs["offer"] is True
    act_as(client, bob)
    bob_prefs = client.get("/api/notices/preferences").json()["preferences"]
    assert bob_prefs["show_live"] is True and bob_prefs["offer"] is False


def test_followers_told_when_show_scheduled_and_live(app: Starlette, client: TestClient) -> None:
    seller, ann, bob, cid = (make_user(app, n) for n in ("seller1", "ann", "bob", "cid"))
    for fan in (ann, bob, cid):
        client.post("/api/sellers/seller1/follow", json={"following": True}, headers=act_as(client, fan))
    h = act_as(client, cid)
    client.put("/api/notices/preferences", json={"preferences": {"show_live": False}}, headers=h)

    show = make_show(app, seller, "Denim night")
    assert show.id is not None
    for fan in (ann, bob, cid):
        [notice] = wait_for_notices(app, fan.id, "show_scheduled")
        assert "Denim night" in notice.text and notice.url == f"/shows/{show.id}"

    context = app_ctx(app)
    sub = client.portal.call(lambda: _subscribe(context, show.id))
    wait_until_watched(app, show.id)
    client.portal.call(context.showlog.publish, show.id, "show.state", {"state": "live"})
    event = next_event(client, sub, "notice")
    assert sorted(event.data["to"]) == sorted([ann.id, bob.id])  # cid switched live notices off
    assert "is live now" in event.data["text"]
    assert len(wait_for_notices(app, ann.id, "show_live")) == 1
    assert wait_for_notices(app, cid.id, "show_live", timeout=0.3) == []
    # Announced once, even if the state event repeats (reconnect) or another process sees it.
    client.portal.call(context.showlog.publish, show.id, "show.state", {"state": "live"})
    time.sleep(0.5)
    assert len(wait_for_notices(app, ann.id, "show_live")) == 1
    sub.close()


def _subscribe(context: Any, show_id: int) -> Any:
    async def go() -> Any:
        return context.bus.subscribe(show_topic(show_id))

    return go()


def test_liked_item_up_now_goes_to_likers_only(app: Starlette, client: TestClient) -> None:
    seller, ann, bob = make_user(app, "seller1"), make_user(app, "ann"), make_user(app, "bob")
    coat = make_listing(app, seller, "blue coat")
    client.post(f"/api/listings/{coat.id}/like", json={"liked": True}, headers=act_as(client, ann))
    show = make_show(app, seller, state="live")
    context = app_ctx(app)
    sub = client.portal.call(lambda: _subscribe(context, show.id))
    wait_until_watched(app, show.id)
    lot = {"lot_no": 1, "listing_id": coat.id, "kind": "claim", "state": "open"}
    client.portal.call(context.showlog.publish, show.id, "lot.opened", {"lot": lot})
    event = next_event(client, sub, "notice")
    assert event.data["to"] == [ann.id]
    assert event.data["text"] == "The blue coat you liked is up now!"
    assert wait_for_notices(app, bob.id, "liked_up_now", timeout=0.3) == []
    sub.close()


def test_notification_centre_unread_and_mark_read(app: Starlette, client: TestClient) -> None:
    ann, bob = make_user(app, "ann"), make_user(app, "bob")
    notifier = app_ctx(app).social.notifier  # type: ignore[union-attr]
    client.portal.call(notifier.notify, [ann.id], "sale", "You sold the <b>coat</b>", "/orders")
    client.portal.call(notifier.notify, [ann.id, bob.id], "show_live", "Live now", "/shows/1")
    h = act_as(client, ann)
    data = client.get("/api/notices").json()
    assert data["unread"] == 2 and [n["kind"] for n in data["notices"]] == ["show_live", "sale"]
    page = client.get("/notifications")
    assert page.status_code == 200
    assert "You sold the &lt;b&gt;coat&lt;/b&gt;" in page.text  # escaped, never markup
    assert 'data-unread="2"' in page.text  # the bell

    bob_ids = [n["id"] for n in client.get("/api/notices").json()["notices"]]
    h_bob = act_as(client, bob)
    bob_notice = client.get("/api/notices").json()["notices"][0]["id"]
    # Bob marking Ann's notices read changes nothing of Ann's.
    resp = client.post("/api/notices/read", json={"ids": bob_ids}, headers=h_bob)
    assert resp.json()["marked"] == 0
    assert client.post("/api/notices/read", json={"ids": [bob_notice]}, headers=h_bob).json()["unread"] == 0
    assert client.post("/api/notices/read", json={"ids": "all"}, headers=h_bob).status_code == 400
    assert client.post("/api/notices/read", json={"ids": list(range(500))}, headers=h_bob).status_code == 400
    assert client.get("/api/notices?after=x").status_code == 400

    h = act_as(client, ann)
    assert client.get("/api/notices").json()["unread"] == 2
    assert client.post("/api/notices/read", json={}, headers=h).json() == {"marked": 2, "unread": 0}
    act_as(client, None)
    assert client.get("/notifications", follow_redirects=False).status_code == 303


async def test_the_scan_asks_the_database_once_per_show_announcement() -> None:
    """The watcher's scan comes back to every open show each second: whether to announce it (an INSERT
    that another process may have made first) is asked once per process, not every second."""
    from types import SimpleNamespace

    from liveshow.social.watcher import ShowWatcher

    asked: list[str] = []
    answers = iter([RuntimeError("database away"), False, False])

    def claim_fanout(key: str) -> bool:
        asked.append(key)
        answer = next(answers, False)
        if isinstance(answer, Exception):
            raise answer
        return answer

    watcher = ShowWatcher(db=None, bus=None, notifier=SimpleNamespace(claim_fanout=claim_fanout))  # type: ignore[arg-type]
    try:
        await watcher.announce_live(7)
    except RuntimeError:
        pass  # not an answer: asked again
    for _ in range(3):
        await watcher.announce_live(7)  # another process announced it: never asked again
    for _ in range(2):
        await watcher.announce_scheduled(SimpleNamespace(id=8))  # type: ignore[arg-type]
    assert asked == ["live:7", "live:7", "scheduled:8"]
