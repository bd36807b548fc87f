"""Answer, don't drop: while Redis is down a room command gets an "unavailable" error frame with a
retry hint on a socket that stays open, a join is told why before it is closed, and chat flows across
processes again once Redis answers (a private redis-server, killed and restarted empty)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from bench.services import PrivatePostgres, PrivateRedis
from liveshow.app import create_app
from liveshow.settings import Settings
from tests.conftest import LiveServer, make_settings
from tests.roomkit import Peer, RoomEnv

pytestmark = pytest.mark.postgres


@pytest.fixture
def outage(
    settings: Settings, private_redis: PrivateRedis
) -> Iterator[tuple[PrivateRedis, RoomEnv, LiveServer, LiveServer]]:
    redis = private_redis
    shared = settings.with_overrides(bus_url=redis.url)
    a = LiveServer(create_app(shared)).start()
    b = LiveServer(create_app(shared)).start()
    env = RoomEnv(shared, a.url)
    try:
        yield redis, env, a, b
    finally:
        a.stop()
        b.stop()
        env.db.close()


async def test_chat_while_redis_is_down_is_answered_and_flows_again_when_it_is_back(
    outage: tuple[PrivateRedis, RoomEnv, LiveServer, LiveServer],
) -> None:
    redis, env, a, b = outage
    alice = await Peer.connect(a.url, env.show_id, env.cookie(env.alice))
    bob = await Peer.connect(b.url, env.show_id, env.cookie(env.bob))
    for peer in (alice, bob):
        await peer.until("snapshot")
    first = await alice.request({"type": "chat.send", "text": "before"})
    assert (await bob.until("chat.message"))["id"] == first["message_id"]

    redis.kill()
    for attempt in range(2):  # the socket stays open: a second command is answered as well
        answer = await alice.request({"type": "chat.send", "text": f"during {attempt}"}, timeout=15)
        assert answer["type"] == "error" and answer["code"] == "unavailable", answer
        assert answer["retry_after_ms"] > 0 and answer["reason"]

    redis.start()  # back, empty
    back_at = time.monotonic()
    while True:  # the page retries after retry_after_ms; here, as soon as an answer says it may
        answer = await alice.request({"type": "chat.send", "text": "after"}, timeout=15)
        if answer["type"] == "chat.sent":
            break
        assert answer["code"] == "unavailable", answer
        assert time.monotonic() - back_at < 10, "chat still refused 10 s after Redis came back"
        await asyncio.sleep(0.2)
    got = await bob.until(lambda f: f.get("type") == "chat.message" and f.get("text") == "after", 10)
    assert got["seq"] == answer["seq"] > first["seq"]  # numbering went on above, not from 1
    assert time.monotonic() - back_at < 5  # the target: chat across processes within 5 s of Redis
    for peer in (alice, bob):
        await peer.close()


async def test_a_join_while_redis_is_down_is_told_why_and_asked_to_come_back(
    outage: tuple[PrivateRedis, RoomEnv, LiveServer, LiveServer],
) -> None:
    redis, env, a, _b = outage
    redis.kill()
    peer = await Peer.connect(a.url, env.show_id, env.cookie(env.alice))
    frame = await peer.next(timeout=15)
    assert frame["type"] == "error" and frame["code"] == "unavailable" and frame["retry_after_ms"] > 0
    with pytest.raises(ConnectionClosed) as closed:
        await peer.next(timeout=15)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


@pytest.fixture
def pg_room(
    tmp_path: Path, private_pg: PrivatePostgres
) -> Iterator[tuple[PrivatePostgres, RoomEnv, LiveServer]]:
    settings = make_settings(tmp_path, private_pg.new_database())
    server = LiveServer(create_app(settings)).start()
    env = RoomEnv(settings, server.url)
    try:
        yield private_pg, env, server
    finally:
        server.stop()
        env.db.close()


async def test_while_the_database_is_down_commands_are_answered_and_joins_told_why(
    pg_room: tuple[PrivatePostgres, RoomEnv, LiveServer],
) -> None:
    """Found with PostgreSQL restarts: chat got a closed socket (1006) with no reply, signed-in
    handshakes answered 500, anonymous viewers were accepted and then dropped without a snapshot."""
    pg, env, server = pg_room
    alice = await Peer.connect(server.url, env.show_id, env.cookie(env.alice))
    await alice.until("snapshot")
    pg.crash()
    answer = await alice.request({"type": "chat.send", "text": "during"}, timeout=15)
    assert answer["type"] == "error" and answer["code"] == "unavailable" and answer["retry_after_ms"] > 0
    for cookie in (env.cookie(env.bob), None):  # signed in (who is it?) and anonymous (the snapshot)
        peer = await Peer.connect(server.url, env.show_id, cookie)
        frame = await peer.next(timeout=15)
        assert frame["type"] == "error" and frame["code"] == "unavailable", frame
        with pytest.raises(ConnectionClosed) as closed:
            await peer.next(timeout=15)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    pg.start()
    deadline = time.monotonic() + 20
    while True:  # the same socket, still open: chat goes through once the database is back
        answer = await alice.request({"type": "chat.send", "text": "after"}, timeout=15)
        if answer["type"] == "chat.sent":
            break
        assert answer["code"] == "unavailable" and time.monotonic() < deadline, answer
        await asyncio.sleep(0.3)
    await alice.close()
