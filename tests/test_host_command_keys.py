"""The host's lot commands, sent by the studio page with a key (auction.js), are answered once per key:
a "Put up" resent after a lost answer opens no second lot."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

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
