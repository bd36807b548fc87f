"""Giveaways: host only, one entry per user through the room, a draw anyone can recompute from the log."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.errors import Conflict, Forbidden, NotAuthenticated
from liveshow.showlog import archived_events
from liveshow.social import giveaways
from liveshow.social.models import Giveaway
from tests.test_social_support import act_as, app_ctx, make_listing, make_show, make_user


def room_enter(client: TestClient, app: Starlette, show_id: int, user: Any) -> Any:
    """What the room does for a viewer's "giveaway.enter" frame: the viewer is in the room (presence)
    and the message is handed to our handler. (tests/test_social_room.py does it over a real socket.)"""
    room = app_ctx(app).room
    if user is not None and room is not None:
        viewer = {"user_id": user.id, "username": user.username}
        client.portal.call(room.presence.join, show_id, f"test-{user.id}", viewer)
    handler = app_ctx(app).room_handlers["giveaway.enter"]
    return client.portal.call(handler, show_id, user, {"type": "giveaway.enter"})


def test_giveaway_draw_is_recorded_and_reproducible(app: Starlette, client: TestClient) -> None:
    host = make_user(app, "host1")
    viewers = [make_user(app, f"viewer{i}") for i in range(5)]
    prize = make_listing(app, host, "Silk scarf", 3000)
    show = make_show(app, host, state="live")
    url = f"/api/shows/{show.id}/giveaways"

    h = act_as(client, viewers[0])
    assert client.post(url, json={"listing_id": prize.id}, headers=h).status_code == 403  # not the host
    h = act_as(client, host)
    assert client.post(url, json={"listing_id": "x"}, headers=h).status_code == 400
    other = make_listing(app, viewers[0], "Not yours", 100)
    assert client.post(url, json={"listing_id": other.id}, headers=h).status_code == 400
    resp = client.post(url, json={"listing_id": prize.id}, headers=h)
    assert resp.status_code == 201
    giveaway_id, commitment = resp.json()["id"], resp.json()["seed_sha256"]
    assert client.post(url, json={"listing_id": prize.id}, headers=h).status_code == 409  # one at a time

    # Viewers in the room enter with one tap; once each; not anonymous, not the host.
    for i, viewer in enumerate(viewers):
        reply = room_enter(client, app, show.id, viewer.user)
        assert reply == {"type": "giveaway.entered", "giveaway_id": giveaway_id, "entries": i + 1}
    with pytest.raises(Conflict):
        room_enter(client, app, show.id, viewers[0].user)
    with pytest.raises(NotAuthenticated):
        room_enter(client, app, show.id, None)
    with pytest.raises(Forbidden):
        room_enter(client, app, show.id, host.user)

    h_v = act_as(client, viewers[1])
    assert client.post(f"/api/giveaways/{giveaway_id}/draw", headers=h_v).status_code == 403
    h = act_as(client, host)
    drawn = client.post(f"/api/giveaways/{giveaway_id}/draw", headers=h).json()
    assert client.post(f"/api/giveaways/{giveaway_id}/draw", headers=h).status_code == 409  # drawn once
    with pytest.raises(Conflict):
        room_enter(client, app, show.id, make_user(app, "latecomer").user)  # closed

    # Anyone can check it from the archived show log: the seed matches the commitment made at the
    # start, and recomputing the draw from seed and entrants names the same winner.
    context = app_ctx(app)
    client.portal.call(context.showlog.flush)
    with context.db.session() as session:
        log = {e.type: json.loads(e.data) for e in archived_events(session, show.id)}
    started, final = log["giveaway.started"], log["giveaway.drawn"]
    assert started["seed_sha256"] == commitment == giveaways.seed_hash(final["seed"])
    assert final == drawn
    assert sorted(final["entrants"]) == sorted(v.id for v in viewers)
    assert giveaways.pick_winner(final["seed"], final["entrants"]) == final["winner_id"]
    assert log["giveaway.entries"]["count"] >= 1
    with context.db.session() as session:
        row = session.get(Giveaway, giveaway_id)
        assert row is not None and row.state == "drawn" and row.winner_id == final["winner_id"]


def test_draw_is_uniform_and_deterministic() -> None:
    entrants = [3, 11, 7, 42]
    assert giveaways.pick_winner("abc", entrants) == giveaways.pick_winner("abc", [42, 7, 11, 3])
    counts = dict.fromkeys(entrants, 0)
    for i in range(4000):
        counts[giveaways.pick_winner(f"seed-{i}", entrants)] += 1
    assert all(800 < c < 1200 for c in counts.values()), counts


def test_giveaway_needs_a_live_show_and_entrants(app: Starlette, client: TestClient) -> None:
    host = make_user(app, "host1")
    prize = make_listing(app, host, "Belt", 1000)
    scheduled = make_show(app, host, state="scheduled")
    h = act_as(client, host)
    assert (
        client.post(
            f"/api/shows/{scheduled.id}/giveaways", json={"listing_id": prize.id}, headers=h
        ).status_code
        == 409
    )
    live = make_show(app, host, state="live")
    gid = client.post(f"/api/shows/{live.id}/giveaways", json={"listing_id": prize.id}, headers=h).json()[
        "id"
    ]
    assert client.post(f"/api/giveaways/{gid}/draw", headers=h).status_code == 409  # nobody entered
    assert client.post("/api/giveaways/999/draw", headers=h).status_code == 404
    with pytest.raises(Conflict):
        room_enter(client, app, scheduled.id, make_user(app, "viewer").user)  # no giveaway open there


def test_winner_gets_zero_price_order(app: Starlette, client: TestClient) -> None:
    orders = pytest.importorskip("liveshow.orders.models")
    host, fan = make_user(app, "host1"), make_user(app, "fan1")
    prize = make_listing(app, host, "Tote", 1500)
    show = make_show(app, host, state="live")
    h = act_as(client, host)
    gid = client.post(f"/api/shows/{show.id}/giveaways", json={"listing_id": prize.id}, headers=h).json()[
        "id"
    ]
    room_enter(client, app, show.id, fan.user)
    drawn = client.post(f"/api/giveaways/{gid}/draw", headers=h).json()
    assert drawn["winner_id"] == fan.id and drawn["order_id"] is not None
    with app_ctx(app).db.session() as session:
        order = session.get(orders.Order, drawn["order_id"])
        assert order is not None and order.price_cents == 0 and order.source == "giveaway"
        assert order.status == "paid"


def test_only_entrants_still_present_can_win(app: Starlette, client: TestClient) -> None:
    """With the room's presence available, an entrant who left the room before the draw is out."""
    host, stays, leaves = make_user(app, "host1"), make_user(app, "stays"), make_user(app, "leaves")
    prize = make_listing(app, host, "Scarf", 1000)
    show = make_show(app, host, state="live")
    h = act_as(client, host)
    gid = client.post(f"/api/shows/{show.id}/giveaways", json={"listing_id": prize.id}, headers=h).json()[
        "id"
    ]
    room_enter(client, app, show.id, stays.user)
    room_enter(client, app, show.id, leaves.user)

    class Presence:
        async def viewers(self, show_id: int) -> list[dict[str, Any] | None]:
            return [{"user_id": stays.id, "username": "stays"}, None]  # `leaves` left; one anonymous

    class Room:
        presence = Presence()

    context = app_ctx(app)
    context.room = Room()  # type: ignore[attr-defined]
    drawn = client.post(f"/api/giveaways/{gid}/draw", headers=h).json()
    assert drawn["entrants"] == [stays.id] and drawn["winner_id"] == stays.id
