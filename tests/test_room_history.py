"""Sequence numbers, resume after a disconnect, gap recovery by snapshot, private events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from liveshow.settings import Settings
from tests.conftest import LiveServer
from tests.roomkit import RoomEnv


@pytest.fixture
def env(settings: Settings, live_server: LiveServer) -> Iterator[RoomEnv]:
    room_env = RoomEnv(settings, live_server.url)
    yield room_env
    room_env.db.close()


async def test_resume_delivers_exactly_what_was_missed(env: RoomEnv) -> None:
    writer, _ = await env.join_snapshot(env.alice)
    reader, _ = await env.join_snapshot(env.bob)
    await writer.request({"type": "chat.send", "text": "before"})
    seen = await reader.until("chat.message")
    await reader.close()
    for text in ("missed 1", "missed 2", "missed 3"):
        await writer.request({"type": "chat.send", "text": text})
    back = await env.join(env.bob, last_seq=seen["seq"])
    got = [await back.until("chat.message") for _ in range(3)]
    assert [f["text"] for f in got] == ["missed 1", "missed 2", "missed 3"]
    assert [f["seq"] for f in got] == sorted(f["seq"] for f in got)
    assert all(f["seq"] > seen["seq"] for f in got)
    await writer.request({"type": "chat.send", "text": "live again"})
    assert (await back.until("chat.message"))["text"] == "live again"
    assert not any(f.get("type") == "snapshot" for f in back.seen)
    await writer.close()
    await back.close()


async def test_seq_is_increasing_and_never_repeats(env: RoomEnv) -> None:
    writer, _ = await env.join_snapshot(env.alice)
    reader, snap = await env.join_snapshot(env.bob)
    for i in range(5):
        await writer.request({"type": "chat.send", "text": f"n{i}"})
    frames = [await reader.until("chat.message") for _ in range(5)]
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(set(seqs)) and seqs[0] > snap["seq"]
    await writer.close()
    await reader.close()


async def test_gap_too_old_gets_a_snapshot(env: RoomEnv, live_server: LiveServer) -> None:
    bus = live_server.app.state.ctx.bus
    bus.retain = 10  # keep little, so a long absence cannot be replayed
    writer, _ = await env.join_snapshot(env.alice)
    for i in range(5):
        await writer.request({"type": "chat.send", "text": f"a{i}"})
    for i in range(20):
        await live_server.app.state.ctx.showlog.publish(env.show_id, "notice", {"n": i})
    back = await env.join(env.bob, last_seq=1)
    snap = await back.next()
    assert snap["type"] == "snapshot" and snap["seq"] >= 25
    assert [m["text"] for m in snap["messages"]] == [f"a{i}" for i in range(5)]
    await writer.close()
    await back.close()


async def test_last_seq_from_the_future_gets_a_snapshot(env: RoomEnv) -> None:
    # E.g. the server restarted with an in-memory bus: the client's numbers mean nothing any more.
    peer = await env.join(env.alice, last_seq=10_000)
    assert (await peer.next())["type"] == "snapshot"
    await peer.close()


async def test_private_events_reach_only_their_users(env: RoomEnv, live_server: LiveServer) -> None:
    alice, _ = await env.join_snapshot(env.alice)
    bob, _ = await env.join_snapshot(env.bob)
    anon, _ = await env.join_snapshot(None)
    showlog = live_server.app.state.ctx.showlog
    await showlog.publish(env.show_id, "notice", {"to": [env.alice.id], "text": "you were outbid"})
    await showlog.publish(env.show_id, "notice", {"text": "public"})
    assert (await alice.until("notice"))["text"] == "you were outbid"
    assert (await bob.until("notice"))["text"] == "public"
    assert (await anon.until("notice"))["text"] == "public"
    await bob.nothing(lambda f: f.get("text") == "you were outbid", 0.3)
    # Nor on resume from history.
    late = await env.join(env.bob, last_seq=0)
    texts = [(await late.until("notice"))["text"]]
    assert texts == ["public"]
    for peer in (alice, bob, anon, late):
        await peer.close()


async def test_presence_count_is_broadcast(env: RoomEnv) -> None:
    a, _ = await env.join_snapshot(env.alice)
    b, _ = await env.join_snapshot(None)
    event = await a.until(lambda f: f.get("type") == "presence" and f["count"] == 2, timeout=8)
    assert event["seq"] > 0
    await b.close()
    await a.until(lambda f: f.get("type") == "presence" and f["count"] == 1, timeout=8)
    await a.close()


async def test_presence_list_is_for_staff_only(env: RoomEnv) -> None:
    alice, _ = await env.join_snapshot(env.alice)
    anon, _ = await env.join_snapshot(None)
    seller, _ = await env.join_snapshot(env.seller)
    assert (await alice.request({"type": "presence.list"}))["code"] == "not_moderator"
    assert (await anon.request({"type": "presence.list"}))["code"] == "not_authenticated"
    listing = await seller.request({"type": "presence.list"})
    assert listing["count"] == 3 and listing["anonymous"] == 1
    assert [v["username"] for v in listing["viewers"]] == ["alice", "seller"]
    for peer in (alice, anon, seller):
        await peer.close()
