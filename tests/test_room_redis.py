"""Two app instances sharing Redis and one DB: every room event made on one reaches the other."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from liveshow.app import create_app
from liveshow.settings import Settings
from tests.conftest import REDIS_URL, LiveServer
from tests.roomkit import Peer, RoomEnv

pytestmark = pytest.mark.redis


@pytest.fixture
def two(settings: Settings, redis_prefix: str) -> Iterator[tuple[RoomEnv, LiveServer, LiveServer]]:
    shared = settings.with_overrides(bus_url=REDIS_URL, bus_prefix=redis_prefix)
    a = LiveServer(create_app(shared)).start()
    b = LiveServer(create_app(shared)).start()
    env = RoomEnv(shared, a.url)
    yield env, a, b
    a.stop()
    b.stop()
    env.db.close()


async def join(server: LiveServer, env: RoomEnv, user: object, last_seq: int | str = "") -> Peer:
    cookie = env.cookie(user) if user is not None else None  # type: ignore[arg-type]
    return await Peer.connect(server.url, env.show_id, cookie, last_seq=last_seq)


async def test_chat_reactions_deletion_and_ban_cross_processes(
    two: tuple[RoomEnv, LiveServer, LiveServer],
) -> None:
    env, a, b = two
    seller = await join(a, env, env.seller)
    alice = await join(a, env, env.alice)
    bob = await join(b, env, env.bob)
    anon_b = await join(b, env, None)
    for peer in (seller, alice, bob, anon_b):
        await peer.until("snapshot")

    sent = await alice.request({"type": "chat.send", "text": "hello from A"})
    got = await bob.until("chat.message")
    assert (got["text"], got["seq"], got["id"]) == ("hello from A", sent["seq"], sent["message_id"])
    assert (await anon_b.until("chat.message"))["seq"] == sent["seq"]

    for _ in range(3):
        await bob.send({"type": "reaction", "kind": "wow"})
    total = 0
    while total < 3:
        total += (await alice.until("reaction.burst"))["counts"].get("wow", 0)
    assert total == 3

    await seller.request({"type": "chat.delete", "message_id": sent["message_id"]})
    assert (await anon_b.until("chat.deleted"))["message_id"] == sent["message_id"]

    await seller.request({"type": "mod.ban", "user_id": env.bob.id})
    assert (await bob.until("moderation.banned"))["banned"] is True
    refused = await bob.request({"type": "chat.send", "text": "from B"})
    assert refused["code"] == "banned"
    await anon_b.nothing("moderation.banned", 0.2)  # private to staff and the banned user

    await seller.request({"type": "mod.slow_mode", "seconds": 20})
    assert (await anon_b.until("chat.slow_mode"))["seconds"] == 20
    for peer in (seller, alice, bob, anon_b):
        await peer.close()


async def test_presence_counts_sockets_on_both_processes(
    two: tuple[RoomEnv, LiveServer, LiveServer],
) -> None:
    env, a, b = two
    seller = await join(a, env, env.seller)
    await seller.until("snapshot")
    viewers = [await join(b, env, env.alice), await join(b, env, None), await join(a, env, None)]
    await seller.until(lambda f: f.get("type") == "presence" and f["count"] == 4, timeout=10)
    listing = await seller.request({"type": "presence.list"})
    assert listing["count"] == 4 and listing["anonymous"] == 2
    assert {v["username"] for v in listing["viewers"]} == {"alice", "seller"}
    for peer in viewers:
        await peer.close()
    await seller.until(lambda f: f.get("type") == "presence" and f["count"] == 1, timeout=10)
    await seller.close()


async def test_resume_on_the_other_process_from_redis_history(
    two: tuple[RoomEnv, LiveServer, LiveServer],
) -> None:
    env, a, b = two
    writer = await join(a, env, env.alice)
    reader = await join(a, env, env.bob)
    await writer.until("snapshot")
    await reader.until("snapshot")
    await writer.request({"type": "chat.send", "text": "first"})
    last = (await reader.until("chat.message"))["seq"]
    await reader.close()  # e.g. process A's load balancer sends the reconnect to B
    await writer.request({"type": "chat.send", "text": "second"})
    await writer.request({"type": "chat.send", "text": "third"})
    back = await join(b, env, env.bob, last_seq=last)
    texts = [(await back.until("chat.message"))["text"] for _ in range(2)]
    assert texts == ["second", "third"]
    assert not any(f.get("type") == "snapshot" for f in back.seen)
    await writer.close()
    await back.close()


async def test_a_quiet_room_still_delivers_after_the_redis_socket_timeout(redis_prefix: str) -> None:
    """Regression: the bus reader's blocking XREAD outlived redis-py's default 5 s socket timeout and
    died silently, so a room that was quiet for a few seconds never heard anything again."""
    from liveshow.bus.redis import RedisBus

    bus = RedisBus(REDIS_URL, prefix=redis_prefix)
    await bus.start()
    try:
        sub = bus.subscribe("show:1", after_seq=0)
        await asyncio.sleep(6.5)
        await bus.publish("show:1", "chat.message", {"text": "still there?"})
        assert (await sub.get(timeout=5)).data["text"] == "still there?"
    finally:
        await bus.close()


async def test_chat_limits_count_a_user_once_across_processes(
    two: tuple[RoomEnv, LiveServer, LiveServer],
) -> None:
    env, a, b = two
    seller = await join(a, env, env.seller)
    alice_a, alice_b = await join(a, env, env.alice), await join(b, env, env.alice)
    bob_a, bob_b = await join(a, env, env.bob), await join(b, env, env.bob)
    for peer in (seller, alice_a, alice_b, bob_a, bob_b):
        await peer.until("snapshot")
    # 5 messages in 10 s per user, wherever they come from
    for n in range(5):
        sent = await (alice_a if n % 2 else alice_b).request({"type": "chat.send", "text": f"m{n}"})
        assert sent["type"] == "chat.sent", sent
    for peer in (alice_a, alice_b):
        refused = await peer.request({"type": "chat.send", "text": "one too many"})
        assert refused["code"] == "rate_limited" and refused["retry_after"] > 0
    # slow mode: one message per 20 s per user, also across processes
    await seller.request({"type": "mod.slow_mode", "seconds": 20})
    await bob_b.until("chat.slow_mode")
    assert (await bob_b.request({"type": "chat.send", "text": "first"}))["type"] == "chat.sent"
    slowed = await bob_a.request({"type": "chat.send", "text": "second, on the other process"})
    assert slowed["code"] == "rate_limited" and "Slow mode" in slowed["reason"]
    for peer in (seller, alice_a, alice_b, bob_a, bob_b):
        await peer.close()
