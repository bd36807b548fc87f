"""The room's fan-out against a real server: a socket that stops reading is dropped (its unsent bytes
or its bounded outbox fill up) while the others keep receiving every event, in order, without waiting
for it. Run on the fast lane (what `liveshow serve` runs) and on the ASGI send path (taken when
permessage-deflate is negotiated: each socket's frames are then compressed on their own)."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette

from liveshow.chat.room import OUTBOX_LIMIT, SEND_BUFFER_LIMIT, Room
from liveshow.context import AppContext
from liveshow.settings import Settings
from tests.conftest import LiveServer
from tests.roomkit import RoomEnv


@pytest.fixture(params=["lane", "deflate"])
def live_server(app: Starlette, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    server = LiveServer(app, deflate=request.param == "deflate").start()
    yield server
    server.stop()


@pytest.fixture
def env(settings: Settings, live_server: LiveServer) -> Iterator[RoomEnv]:
    room_env = RoomEnv(settings, live_server.url)
    yield room_env
    room_env.db.close()


def stalled_socket(env: RoomEnv, port: int, deflate: bool) -> socket.socket:
    """A real client that completes the handshake as alice and then never reads again."""
    extension = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else ""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: stalls sooner
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws/shows/{env.show_id}?last_seq= HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extension}"
        f"Cookie: liveshow_session={env.cookie(env.alice)}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def test_a_stalled_socket_is_dropped_and_the_others_get_everything(
    app: Starlette, live_server: LiveServer, env: RoomEnv
) -> None:
    context: AppContext = app.state.ctx
    assert context.room is not None
    good, _ = await env.join_snapshot(env.bob)
    room: Room = context.room.rooms[env.show_id]
    server_loop = room._tasks[0].get_loop()  # the server runs in its own thread and loop
    stalled = await asyncio.to_thread(stalled_socket, env, live_server.port, live_server.deflate)
    deadline = time.monotonic() + 5
    while len(room.connections) < 2:
        assert time.monotonic() < deadline, "the raw socket never joined"
        await asyncio.sleep(0.02)
    (slow,) = [c for c in room.connections if c.user_id == env.alice.id]

    published: list[int] = []
    payload = "x" * 20_000
    to = [env.alice.id, env.bob.id]  # private: not archived, so the test does not fill the database

    async def flood() -> None:
        # One event per tick or so, until the stalled socket is gone (its send buffer or outbox
        # must fill first), plus a few more that the good socket must still get.
        extra = 5
        for _ in range(3000):
            event = await context.showlog.publish(env.show_id, "notice", {"text": payload, "to": to})
            published.append(event.seq)
            if slow not in room.connections:
                extra -= 1
                if extra == 0:
                    return
            await asyncio.sleep(room.tick / 2)

    received: list[int] = []
    done = False

    async def read_good() -> None:  # the good socket reads all along, as a browser would
        while not done or len(received) < len(published):
            received.append((await good.until("notice", timeout=10))["seq"])

    started = time.monotonic()
    reader = asyncio.create_task(read_good())
    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(flood(), server_loop))
    done = True
    await asyncio.wait_for(reader, 30)
    assert slow not in room.connections and slow.closed
    on_lane = slow.lane is not None
    assert on_lane == (not live_server.deflate)
    if on_lane:
        assert len(published) * len(payload) > SEND_BUFFER_LIMIT
    else:
        assert len(published) > OUTBOX_LIMIT
    assert received == published  # every event, in order, none twice
    # The good socket was never held up by the stalled one: the whole run took ticks, not timeouts.
    assert time.monotonic() - started < 60
    stalled.close()
    await good.close()
