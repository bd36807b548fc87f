"""Claims and bids through the real room WebSocket (a real websockets client against uvicorn): replies
carry reply_to, bad input gets an error frame and changes nothing, a retry returns the first answer, and
the private outbid notice reaches only the outbid bidder."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import select

from liveshow.db import Database
from liveshow.orders.models import Order
from liveshow.settings import Settings
from tests.auction_fixtures import World, key, make_world
from tests.conftest import LiveServer
from tests.roomkit import Peer, session_cookie


class Env:
    def __init__(self, settings: Settings, url: str) -> None:
        self.settings = settings
        self.url = url
        self.db = Database(settings.database_url)
        self.world: World = make_world(self.db, viewers=3, quantities=(1, 3))

    async def join(self, who: Any | None) -> Peer:
        cookie = session_cookie(self.settings, who) if who is not None else None
        peer = await Peer.connect(self.url, self.world.show_id, cookie)
        await peer.until("snapshot")
        return peer

    def orders(self) -> list[Order]:
        with self.db.session() as s:
            return list(s.exec(select(Order)).all())


@pytest.fixture
def env(settings: Settings, live_server: LiveServer) -> Iterator[Env]:
    e = Env(settings, live_server.url)
    yield e
    e.db.close()


async def open_lot(host: Peer, listing_id: int | None, **fields: Any) -> dict[str, Any]:
    reply = await host.request({"type": "lot.open", "listing_id": listing_id, **fields})
    assert reply["type"] == "lot.open.result" and reply["ok"] is True, reply
    return reply


async def lot_state(peer: Peer) -> dict[str, Any]:
    reply = await peer.request({"type": "lot.state"})
    lot: dict[str, Any] = reply["lot"]
    return lot


def test_claim_replies_and_retry_returns_the_first_answer(env: Env) -> None:
    async def run() -> None:
        w = env.world
        host, alice, bob = (
            await env.join(w.seller),
            await env.join(w.viewers[0]),
            await env.join(w.viewers[1]),
        )
        await open_lot(host, w.listings[1].id, mode="claim")
        k = key()
        first = await alice.request({"type": "claim", "key": k, "quantity": 2})
        assert first["type"] == "claim.result" and first["ok"] is True
        assert first["quantity"] == 2 and first["remaining"] == 1 and first["price_cents"] == 1600
        # everyone sees the claim; the buyer and seller get the private order notices
        seen = await bob.until("claim.accepted")
        assert seen["remaining"] == 1 and isinstance(seen["seq"], int)
        # a retry of the same request (same key, same content) gets the first answer, no new order
        again = await alice.request({"type": "claim", "key": k, "quantity": 2})
        assert {x: again[x] for x in ("units", "dseq", "remaining")} == {
            x: first[x] for x in ("units", "dseq", "remaining")
        }
        assert len(env.orders()) == 2
        # the same key for different content is refused, and changes nothing
        reused = await alice.request({"type": "claim", "key": k, "quantity": 1})
        assert reused["type"] == "error" and reused["code"] == "idempotency_key_reused"
        assert "reply_to" in reused and reused["reason"]
        assert (await lot_state(bob))["remaining"] == 1 and len(env.orders()) == 2
        # beyond what is left, anonymous, the seller: refused with a reason each
        over = await bob.request({"type": "claim", "key": key(), "quantity": 2})
        assert over["code"] == "sold_out" and "Only 1 left" in over["reason"]
        anon = await env.join(None)
        refused = await anon.request({"type": "claim", "key": key()})
        assert refused["type"] == "error" and refused["code"] == "not_authenticated"
        own = await host.request({"type": "claim", "key": key()})
        assert own["code"] == "self_bidding"
        assert (await lot_state(bob))["remaining"] == 1 and len(env.orders()) == 2
        last = await bob.request({"type": "claim", "key": key()})
        assert last["ok"] is True and last["remaining"] == 0
        closed = await alice.until("lot.closed")
        assert closed["outcome"] == "sold_out"
        assert sorted(o.buyer_id for o in env.orders()) == sorted(
            [w.viewers[0].id, w.viewers[0].id, w.viewers[1].id]
        )
        for peer in (host, alice, bob, anon):
            await peer.close()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (-500, "bad_amount"),
        (0, "bad_amount"),
        (2000.5, "bad_amount"),
        ("twenty", "bad_amount"),
        ("20.00", "bad_amount"),
        (True, "bad_amount"),
        (None, "bad_amount"),
        (10**12, "bad_amount"),
        (1400, "bid_too_low"),
    ],
)
def test_bad_bids_get_error_frames_and_change_nothing(env: Env, amount: Any, code: str) -> None:
    async def run() -> None:
        w = env.world
        host, alice = await env.join(w.seller), await env.join(w.viewers[0])
        await open_lot(host, w.listings[0].id, mode="auction", start_cents=1500, duration_s=60)
        before = await lot_state(alice)
        reply = await alice.request({"type": "bid", "key": key(), "max_cents": amount})
        assert reply["type"] == "error" and reply["code"] == code and reply["reason"]
        assert reply["reply_to"]
        after = await lot_state(alice)
        assert after["bids"] == 0 and after["price_cents"] == before["price_cents"] == 1500
        await host.close()
        await alice.close()

    asyncio.run(run())


def test_bids_outbid_notice_is_private_and_viewer_cannot_host(env: Env) -> None:
    async def run() -> None:
        w = env.world
        host = await env.join(w.seller)
        alice, bob, carol = [await env.join(v) for v in w.viewers[:3]]
        peers = [host, alice, bob, carol]
        # a viewer sending host commands is refused; nothing goes on screen
        for kind in ("lot.open", "lot.next", "lot.close", "lot.cancel"):
            refused = await alice.request({"type": kind, "listing_id": w.listings[0].id, "mode": "claim"})
            assert refused["type"] == "error" and refused["code"] == "host_only", refused
        assert await lot_state(alice) is None
        # bids on nothing on screen
        nothing = await alice.request({"type": "bid", "key": key(), "max_cents": 2000})
        assert nothing["code"] == "not_on_screen"

        await open_lot(host, w.listings[0].id, mode="auction", start_cents=1500, duration_s=60)
        a = await alice.request({"type": "bid", "key": key(), "max_cents": 1500})
        assert a["ok"] is True and a["leading"] is True and a["price_cents"] == 1500
        # the next increment from $15 is $1: $15.50 is too low
        low = await bob.request({"type": "bid", "key": key(), "max_cents": 1550})
        assert low["code"] == "bid_too_low"
        b = await bob.request({"type": "bid", "key": key(), "max_cents": 3000})
        assert b["ok"] is True and b["leading"] is True and b["price_cents"] == 1600
        notice = await alice.until(lambda f: f.get("type") == "notice" and f.get("kind") == "outbid")
        assert notice["price_cents"] == 1600 and notice["to"] == [w.viewers[0].id]
        for other in (bob, carol, host):
            await other.until("bid.accepted")
        for other in (bob, carol, host):
            await other.nothing(lambda f: f.get("type") == "notice", 0.5)
        # a proxy bid below the leader's maximum loses at once: the bidder is told, privately
        c = await carol.request({"type": "bid", "key": key(), "max_cents": 2000})
        assert c["ok"] is True and c["leading"] is False and c["price_cents"] == 2100
        lot = await lot_state(carol)
        assert lot["leader_id"] == w.viewers[1].id and lot["price_cents"] == 2100 and lot["bids"] == 3
        # an auction with bids cannot be cancelled
        cancel = await host.request({"type": "lot.cancel"})
        assert cancel["code"] == "has_bids"
        for peer in peers:
            await peer.close()

    asyncio.run(run())
