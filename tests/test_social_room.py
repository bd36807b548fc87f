"""Social over the real show room: a go-live toast reaches the follower's socket only, and a giveaway
is entered with one tap over the socket and drawn among the entrants still present."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from liveshow.settings import Settings
from liveshow.shows.models import Show
from liveshow.social.models import Follow
from tests.conftest import LiveServer
from tests.roomkit import RoomEnv, add_show


@pytest.fixture
def env(settings: Settings, live_server: LiveServer) -> Iterator[RoomEnv]:
    room_env = RoomEnv(settings, live_server.url)
    yield room_env
    room_env.db.close()


async def test_go_live_toast_reaches_the_follower_only(env: RoomEnv) -> None:
    show_id = add_show(env.db, env.seller, state="scheduled", title="Waiting room")
    with env.db.session() as session:
        session.add(Follow(follower_id=env.alice.id, seller_id=env.seller.id))
        session.commit()
    alice, bob = await env.join(env.alice, show_id=show_id), await env.join(env.bob, show_id=show_id)
    await alice.until("snapshot")
    await bob.until("snapshot")
    with env.db.session() as session:
        show = session.get(Show, show_id)
        assert show is not None
        show.state, show.went_live_at = "live", datetime.now(UTC)
        session.add(show)
        session.commit()
    notice = await alice.until("notice", timeout=10)
    assert notice["kind"] == "show_live" and "Waiting room" in notice["text"]
    assert notice["url"] == f"/shows/{show_id}"
    await bob.nothing("notice", 1.5)
    await alice.close()
    await bob.close()


async def test_giveaway_over_the_socket_only_present_entrants_win(env: RoomEnv) -> None:
    async with httpx.AsyncClient(
        base_url=env.url, cookies={"liveshow_session": env.cookie(env.seller)}, headers={"X-CSRF-Token": "t"}
    ) as host:
        from liveshow.closet.models import Listing

        with env.db.session() as session:
            prize = Listing(seller_id=env.seller.id, title="Silk scarf", price_cents=3000)
            session.add(prize)
            session.commit()
            session.refresh(prize)
        alice, bob = await env.join(env.alice), await env.join(env.bob)
        anon = await env.join(None)
        for peer in (alice, bob, anon):
            await peer.until("snapshot")
        resp = await host.post(f"/api/shows/{env.show_id}/giveaways", json={"listing_id": prize.id})
        assert resp.status_code == 201, resp.text
        started = await alice.until("giveaway.started")
        assert started["seed_sha256"] == resp.json()["seed_sha256"]

        reply = await alice.request({"type": "giveaway.enter"})
        assert reply["type"] == "giveaway.entered" and reply["entries"] == 1
        again = await alice.request({"type": "giveaway.enter"})
        assert again["type"] == "error" and again["code"] == "already_entered"
        refused = await anon.request({"type": "giveaway.enter"})
        assert refused["type"] == "error" and refused["code"] == "not_authenticated"
        assert (await bob.request({"type": "giveaway.enter"}))["entries"] == 2
        await bob.close()  # bob leaves the room before the draw

        drawn = (await host.post(f"/api/giveaways/{started['giveaway_id']}/draw")).json()
        assert drawn["entrants"] == [env.alice.id] and drawn["winner_id"] == env.alice.id
        frame = await alice.until("giveaway.drawn")
        assert frame["seed"] == drawn["seed"]
        toast = await alice.until("notice")
        assert toast["kind"] == "giveaway"
        await alice.close()
        await anon.close()
