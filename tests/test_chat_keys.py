"""Chat sends carry a client key: a retry after a lost answer is answered once, a message stored but
never announced goes out on the retry, and a key is never reused for other text. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import select
from websockets.exceptions import ConnectionClosed

from liveshow.chat.models import ChatMessage
from liveshow.settings import Settings
from tests.conftest import LiveServer
from tests.roomkit import Peer, RoomEnv


@pytest.fixture
def env(settings: Settings, live_server: LiveServer) -> Iterator[RoomEnv]:
    room_env = RoomEnv(settings, live_server.url)
    yield room_env
    room_env.db.close()


def stored(env: RoomEnv) -> list[ChatMessage]:
    with env.db.session() as session:
        return list(session.exec(select(ChatMessage).order_by(ChatMessage.id)).all())  # type: ignore[arg-type]


async def chat_events(peer: Peer, seconds: float) -> list[dict[str, Any]]:
    """Every chat.message the peer gets within seconds (the room flushes every few tens of ms)."""
    got: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            got.append(await peer.until("chat.message", left))
        except TimeoutError:
            break
    return got


async def test_a_retry_with_the_same_key_is_answered_once(env: RoomEnv) -> None:
    alice, _ = await env.join_snapshot(env.alice)
    watcher, _ = await env.join_snapshot(None)
    send = {"type": "chat.send", "text": "is it still there?", "key": "chat-k-0001"}
    first = await alice.request(send)
    assert first["type"] == "chat.sent"
    again = await alice.request(send)
    assert (again["type"], again["message_id"], again["seq"]) == (
        "chat.sent",
        first["message_id"],
        first["seq"],
    )
    # A retry from another socket (the page reconnected) is the same message too.
    other, _ = await env.join_snapshot(env.alice)
    third = await other.request(send)
    assert (third["message_id"], third["seq"]) == (first["message_id"], first["seq"])
    events = await chat_events(watcher, 1.0)
    assert [(e["id"], e["seq"]) for e in events] == [(first["message_id"], first["seq"])]
    rows = stored(env)
    assert [(r.id, r.client_key, r.published_seq) for r in rows] == [
        (first["message_id"], "chat-k-0001", first["seq"])
    ]
    # The key is the sender's own: bob may use the same string for his own message.
    bob, _ = await env.join_snapshot(env.bob)
    his = await bob.request({**send, "text": "mine"})
    assert his["type"] == "chat.sent" and his["message_id"] != first["message_id"]
    for peer in (alice, watcher, other, bob):
        await peer.close()


async def test_a_reused_key_with_other_text_is_refused(env: RoomEnv) -> None:
    alice, _ = await env.join_snapshot(env.alice)
    first = await alice.request({"type": "chat.send", "text": "one", "key": "chat-k-0002"})
    assert first["type"] == "chat.sent"
    refused = await alice.request({"type": "chat.send", "text": "two", "key": "chat-k-0002"})
    assert (refused["type"], refused["code"], refused["field"]) == ("error", "key_reused", "key")
    assert [r.text for r in stored(env)] == ["one"]
    await alice.close()


async def test_a_bad_key_is_refused_and_a_missing_key_still_accepted(env: RoomEnv) -> None:
    alice, _ = await env.join_snapshot(env.alice)
    for bad in ("short", "x" * 81, "has space here", 12345678, ["chat-k-0003"]):
        refused = await alice.request({"type": "chat.send", "text": "hi", "key": bad})
        assert (refused["code"], refused["field"]) == ("invalid", "key"), bad
    plain = [await alice.request({"type": "chat.send", "text": "hi"}) for _ in range(2)]
    assert [p["type"] for p in plain] == ["chat.sent", "chat.sent"]
    assert plain[0]["message_id"] != plain[1]["message_id"]  # no key: two sends are two messages
    assert [r.client_key for r in stored(env)] == [None, None]
    await alice.close()


async def test_a_retry_is_answered_even_when_the_sender_is_now_rate_limited(env: RoomEnv) -> None:
    alice, _ = await env.join_snapshot(env.alice)
    answers = [
        await alice.request({"type": "chat.send", "text": f"#{i}", "key": f"chat-k-rl-{i}"}) for i in range(5)
    ]
    assert [a["type"] for a in answers] == ["chat.sent"] * 5
    limited = await alice.request({"type": "chat.send", "text": "#5", "key": "chat-k-rl-5"})
    assert limited["code"] == "rate_limited"
    again = await alice.request({"type": "chat.send", "text": "#4", "key": "chat-k-rl-4"})
    assert (again["type"], again["message_id"], again["seq"]) == (
        "chat.sent",
        answers[4]["message_id"],
        answers[4]["seq"],
    )
    assert len(stored(env)) == 5
    await alice.close()


async def test_a_message_stored_but_not_published_goes_out_once_on_retry(
    env: RoomEnv, live_server: LiveServer
) -> None:
    service = live_server.app.state.ctx.room
    publish = service.publish
    failures = []

    async def bus_fails_once(show_id: int, type: str, data: dict[str, Any], durable: bool = False) -> Any:
        if type == "chat.message" and not failures:
            failures.append(data["id"])
            raise ConnectionError("bus is away")
        return await publish(show_id, type, data, durable=durable)

    service.publish = bus_fails_once
    watcher, _ = await env.join_snapshot(None)
    alice, _ = await env.join_snapshot(env.alice)
    send = {"type": "chat.send", "text": "claim the jacket", "key": "chat-k-0004"}
    # The first attempt's answer is lost: an error frame or the socket closing, never chat.sent.
    try:
        answer = await alice.request(send, timeout=3.0)
        assert answer["type"] == "error", answer
    except (ConnectionClosed, TimeoutError):
        pass
    assert len(failures) == 1
    [row] = stored(env)
    assert (row.id, row.published_seq) == (failures[0], None)
    retry_peer, _ = await env.join_snapshot(env.alice)
    retried = await retry_peer.request(send)
    assert (retried["type"], retried["message_id"]) == ("chat.sent", row.id)
    again = await retry_peer.request(send)
    assert (again["message_id"], again["seq"]) == (row.id, retried["seq"])
    events = await chat_events(watcher, 1.0)
    assert [(e["id"], e["seq"], e["text"]) for e in events] == [(row.id, retried["seq"], "claim the jacket")]
    assert [(r.id, r.published_seq) for r in stored(env)] == [(row.id, retried["seq"])]
    for peer in (watcher, alice, retry_peer):
        await peer.close()


async def test_concurrent_sends_of_one_key_store_one_message(env: RoomEnv) -> None:
    peers = [(await env.join_snapshot(env.alice))[0] for _ in range(3)]
    send = {"type": "chat.send", "text": "all at once", "key": "chat-k-0005"}
    answers = await asyncio.gather(*(p.request(send) for p in peers))
    assert {a["type"] for a in answers} == {"chat.sent"}
    assert len({a["message_id"] for a in answers}) == 1
    assert len(stored(env)) == 1
    for peer in peers:
        await peer.close()


async def test_a_marked_resend_of_a_stored_message_uses_no_rate_limit(env: RoomEnv) -> None:
    alice, _ = await env.join_snapshot(env.alice)
    for i in range(4):
        sent = await alice.request({"type": "chat.send", "text": f"#{i}", "key": f"chat-k-rs-{i}"})
        assert sent["type"] == "chat.sent"
    for _ in range(2):
        again = await alice.request({"type": "chat.send", "text": "#3", "key": "chat-k-rs-3", "resend": True})
        assert (again["type"], again["message_id"]) == ("chat.sent", sent["message_id"])
    # Five in ten seconds: the fifth new message still fits, the resends did not count.
    fifth = await alice.request({"type": "chat.send", "text": "#4", "key": "chat-k-rs-4"})
    assert fifth["type"] == "chat.sent"
    assert len(stored(env)) == 5
    await alice.close()
