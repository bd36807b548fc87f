"""The host's lot commands, sent by the studio page with a key (auction.js), are answered once per key:
a "Put up" resent after a lost answer opens no second lot; a chat claim published again claims once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from liveshow.chat.models import ChatMessage
from liveshow.settings import Settings
from tests.auction_fixtures import key
from tests.conftest import LiveServer
from tests.test_room_auction_ws import Env


@pytest.fixture
def env(settings: Settings, live_server: LiveServer) -> Iterator[Env]:
    e = Env(settings, live_server.url)
    yield e
    e.db.close()


def test_a_resent_lot_open_opens_one_lot(env: Env) -> None:
    async def run() -> None:
        w = env.world
        host, alice = await env.join(w.seller), await env.join(w.viewers[0])
        put_up = {"type": "lot.open", "listing_id": w.listings[0].id, "mode": "claim", "key": key()}
        first = await host.request(put_up)
        assert first["type"] == "lot.open.result" and first["ok"] is True, first
        again = await host.request(put_up)
        assert {**again, "reply_to": None} == {**first, "reply_to": None}
        opened = await alice.until("lot.opened")
        with pytest.raises(TimeoutError):
            await alice.until("lot.opened", timeout=0.8)
        close = {"type": "lot.close", "key": key()}
        closed = await host.request(close)
        assert closed["type"] == "lot.close.result", closed
        assert {**(await host.request(close)), "reply_to": None} == {**closed, "reply_to": None}
        await alice.until("lot.closed")
        with pytest.raises(TimeoutError):
            await alice.until("lot.closed", timeout=0.8)
        assert opened["lot"]["lot_no"] == first["lot"]["lot_no"]
        for peer in (host, alice):
            await peer.close()

    asyncio.run(run())


def test_a_chat_claim_published_again_on_retry_claims_once(env: Env) -> None:
    """A keyed "claim" chat message whose publish was not recorded goes out again on the retry and meets
    the chat hooks again: the claim it makes is keyed by the message, so it is still one claim."""

    async def run() -> None:
        w = env.world
        host, alice = await env.join(w.seller), await env.join(w.viewers[0])
        await host.request(
            {"type": "lot.open", "listing_id": w.listings[1].id, "mode": "claim", "key": key()}
        )
        send = {"type": "chat.send", "text": "claim", "key": "chat-claim-01"}
        first = await alice.request(send)
        assert first["type"] == "chat.sent"
        await host.until("claim.accepted")
        with env.db.session() as s:
            row = s.get(ChatMessage, first["message_id"])
            assert row is not None and row.published_seq == first["seq"]
            row.published_seq = None  # as if recording the publish had failed
            s.add(row)
            s.commit()
        again = await alice.request(send)
        assert again["message_id"] == first["message_id"] and again["seq"] > first["seq"]
        await host.until(lambda f: f.get("type") == "chat.message" and f["seq"] == again["seq"])
        with pytest.raises(TimeoutError):
            await host.until("claim.accepted", timeout=1.0)
        assert len([o for o in env.orders() if o.buyer_id == w.viewers[0].id]) == 1
        for peer in (host, alice):
            await peer.close()

    asyncio.run(run())
