"""Chat in the room: who may write, escaping-safe storage, history on join, pins, hooks, rate limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import select

from liveshow.accounts.models import User
from liveshow.chat.models import ChatMessage
from liveshow.settings import Settings
from tests.conftest import LiveServer
from tests.roomkit import RoomEnv


@pytest.fixture
def env(settings: Settings, live_server: LiveServer) -> Iterator[RoomEnv]:
    room_env = RoomEnv(settings, live_server.url)
    yield room_env
    room_env.db.close()


async def test_message_reaches_every_viewer_with_seq_and_role(env: RoomEnv) -> None:
    alice, _ = await env.join_snapshot(env.alice)
    anon, _ = await env.join_snapshot(None)
    seller, _ = await env.join_snapshot(env.seller)
    sent = await alice.request({"type": "chat.send", "text": "  is the jacket  still there? "})
    assert sent["type"] == "chat.sent" and sent["seq"] >= 1
    for peer in (alice, anon, seller):
        got = await peer.until("chat.message")
        assert got["text"] == "is the jacket still there?"  # trimmed, inner runs collapsed (usertext)
        assert (got["seq"], got["id"], got["role"], got["username"]) == (
            sent["seq"],
            sent["message_id"],
            "viewer",
            "alice",
        )
    await seller.request({"type": "chat.send", "text": "Yes!"})
    assert (await anon.until("chat.message"))["role"] == "seller"
    for peer in (alice, anon, seller):
        await peer.close()


async def test_anonymous_cannot_write_and_text_is_bounded(env: RoomEnv) -> None:
    anon, _ = await env.join_snapshot(None)
    refused = await anon.request({"type": "chat.send", "text": "hello"})
    assert refused["code"] == "not_authenticated"
    alice, _ = await env.join_snapshot(env.alice)
    too_long = await alice.request({"type": "chat.send", "text": "x" * 501})
    assert too_long["code"] == "invalid" and "500" in too_long["reason"]
    assert (await alice.request({"type": "chat.send", "text": "   "}))["reason"] == "Field text is empty."
    assert (await alice.request({"type": "chat.send", "text": "\x00\x01"}))[
        "reason"
    ] == "Field text is empty."
    ok = await alice.request({"type": "chat.send", "text": "x" * 500})
    assert ok["type"] == "chat.sent"
    with env.db.session() as session:
        assert [len(m.text) for m in session.exec(select(ChatMessage)).all()] == [500]
    await anon.close()
    await alice.close()


async def test_markup_is_stored_and_sent_verbatim_as_text(env: RoomEnv) -> None:
    # The server never builds HTML from chat; the browser renders it with textContent (browser test).
    alice, _ = await env.join_snapshot(env.alice)
    payload = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    await alice.request({"type": "chat.send", "text": payload})
    assert (await alice.until("chat.message"))["text"] == payload
    await alice.close()


async def test_join_gets_the_last_50_messages_in_order(env: RoomEnv) -> None:
    with env.db.session() as session:
        for i in range(60):
            session.add(ChatMessage(show_id=env.show_id, user_id=env.alice.id, text=f"m{i}"))
        session.commit()
    peer, snap = await env.join_snapshot(None)
    assert [m["text"] for m in snap["messages"]] == [f"m{i}" for i in range(10, 60)]
    assert snap["messages"][0]["username"] == "alice"
    await peer.close()


async def test_seller_pins_and_viewer_cannot(env: RoomEnv) -> None:
    alice, _ = await env.join_snapshot(env.alice)
    seller, _ = await env.join_snapshot(env.seller)
    sent = await seller.request({"type": "chat.send", "text": "Free shipping over $50"})
    refused = await alice.request({"type": "chat.pin", "message_id": sent["message_id"]})
    assert refused["code"] == "not_moderator"
    pinned = await seller.request({"type": "chat.pin", "message_id": sent["message_id"]})
    assert pinned["message"]["text"] == "Free shipping over $50"
    event = await alice.until("chat.pinned")
    assert event["message"]["id"] == sent["message_id"]
    missing = await seller.request({"type": "chat.pin", "message_id": 999_999})
    assert missing["code"] == "not_found"
    late, snap = await env.join_snapshot(env.bob)
    assert snap["pinned"]["text"] == "Free shipping over $50"
    await seller.request({"type": "chat.pin", "message_id": None})
    assert (await late.until("chat.pinned"))["message"] is None
    for peer in (alice, seller, late):
        await peer.close()


async def test_accepted_messages_go_to_chat_hooks(env: RoomEnv, live_server: LiveServer) -> None:
    context = live_server.app.state.ctx
    seen: list[tuple[int, str, str]] = []

    async def hook(show_id: int, user: User, text: str, message_id: int) -> None:
        seen.append((show_id, user.username, text))

    context.chat_hooks.append(hook)
    alice, _ = await env.join_snapshot(env.alice)
    await alice.request({"type": "chat.send", "text": "claim 2"})
    await alice.request({"type": "chat.send", "text": "x" * 600})  # refused: never reaches hooks
    assert seen == [(env.show_id, "alice", "claim 2")]
    await alice.close()


async def test_snapshot_providers_add_to_the_snapshot(env: RoomEnv, live_server: LiveServer) -> None:
    service = live_server.app.state.ctx.room

    async def lot(show_id: int) -> dict[str, object]:
        return {"lot": {"show_id": show_id, "title": "Denim jacket"}}

    service.snapshot_providers.append(lot)
    peer, snap = await env.join_snapshot(None)
    assert snap["lot"] == {"show_id": env.show_id, "title": "Denim jacket"}
    await peer.close()


async def test_rate_limit_five_messages_in_ten_seconds(env: RoomEnv) -> None:
    alice, _ = await env.join_snapshot(env.alice)
    for i in range(5):
        assert (await alice.request({"type": "chat.send", "text": f"#{i}"}))["type"] == "chat.sent"
    limited = await alice.request({"type": "chat.send", "text": "#6"})
    assert limited["code"] == "rate_limited" and limited["retry_after"] > 0
    bob, _ = await env.join_snapshot(env.bob)  # others are not affected
    assert (await bob.request({"type": "chat.send", "text": "hi"}))["type"] == "chat.sent"
    with env.db.session() as session:
        assert len(session.exec(select(ChatMessage)).all()) == 6
    await alice.close()
    await bob.close()


async def test_reactions_are_aggregated_into_bursts(env: RoomEnv) -> None:
    alice, _ = await env.join_snapshot(env.alice)
    anon, _ = await env.join_snapshot(None)
    for _ in range(10):
        await alice.send({"type": "reaction", "kind": "heart"})
    for _ in range(5):
        await anon.send({"type": "reaction", "kind": "fire"})
    totals: dict[str, int] = {}
    bursts = 0
    while totals != {"heart": 10, "fire": 5}:
        burst = await anon.until("reaction.burst")
        bursts += 1
        for kind, n in burst["counts"].items():
            totals[kind] = totals.get(kind, 0) + n
    assert bursts <= 3  # fifteen taps, a handful of frames
    await alice.close()
    await anon.close()


async def test_reaction_flood_is_limited(env: RoomEnv) -> None:
    alice, _ = await env.join_snapshot(env.alice)
    for _ in range(25):
        await alice.send({"type": "reaction", "kind": "clap"})
    error = await alice.until("error")
    assert error["code"] == "rate_limited"
    await alice.close()
