"""The room's receive lane (chat/receive_lane.py) against a real uvicorn, from a raw socket that frames
by hand: frames coalesced in one write or split across many are answered in order; a ping is
answered by the server and the lane goes on; whatever the lane does not read itself (binary, a
fragment, bad UTF-8, an unmasked or oversized frame, a close) reaches the server's own parser with the
order kept and the server's own answer or close code."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette

from liveshow.chat.lane import SERVER_SEND
from liveshow.chat.protocol import CLOSE_TOO_BIG, MAX_FRAME_BYTES
from liveshow.chat.receive_lane import PAUSE_AT, ReceiveLane
from liveshow.chat.room import Connection, Room
from liveshow.chat.wsframes import text_frame
from liveshow.context import AppContext
from tests.conftest import LiveServer
from tests.roomkit import RoomEnv

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True) -> bytes:
    """One client frame (RFC 6455 §5.2), masked as a client must unless told otherwise."""
    n = len(payload)
    head = bytes(((0x80 if fin else 0) | opcode,))
    bit = 0x80 if masked else 0
    if n < 126:
        head += bytes((bit | n,))
    elif n < 1 << 16:
        head += bytes((bit | 126,)) + struct.pack("!H", n)
    else:
        head += bytes((bit | 127,)) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ping_frame(ident: str, pad: int = 0) -> bytes:
    message: dict[str, Any] = {"type": "ping", "id": ident}
    if pad:
        message["pad"] = "x" * pad
    return frame(TEXT, json.dumps(message).encode())


class Raw:
    """A room socket as alice, spoken to byte by byte."""

    def __init__(self, env: RoomEnv, port: int, query: str = "?last_seq=") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.settimeout(10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /ws/shows/{env.show_id}{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nCookie: liveshow_session={env.cookie(env.alice)}\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.pending = head.split(b"\r\n\r\n", 1)[1]

    def _exact(self, n: int) -> bytes:
        while len(self.pending) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.pending += chunk
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def read(self) -> tuple[int, bytes]:
        """The next server frame (unmasked, unfragmented: what this server sends)."""
        b0, b1 = self._exact(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._exact(8))
        return b0 & 0x0F, self._exact(n)

    def messages(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` answers and errors (room batches of events are skipped)."""
        out: list[dict[str, Any]] = []
        while len(out) < count:
            opcode, payload = self.read()
            assert opcode == TEXT, (opcode, payload)
            message = json.loads(payload)
            if message.get("type") in ("pong", "error"):
                out.append(message)
        return out

    def close_code(self) -> int:
        """Read until the server's close frame; its status code."""
        while True:
            opcode, payload = self.read()
            if opcode == CLOSE:
                return int(struct.unpack("!H", payload[:2])[0])


@pytest.fixture
def env(live_server: LiveServer, settings: Any) -> Iterator[RoomEnv]:
    room_env = RoomEnv(settings, live_server.url)
    yield room_env
    room_env.db.close()


@pytest.fixture
def raw(env: RoomEnv, live_server: LiveServer) -> Iterator[Raw]:
    client = Raw(env, live_server.port)
    client.sock.sendall(ping_frame("joined"))  # answered once the socket is in the room
    assert client.messages(1)[0]["reply_to"] == "joined"
    yield client
    client.sock.close()


def alice_socket(app: Starlette, env: RoomEnv) -> Connection:
    context: AppContext = app.state.ctx
    assert context.room is not None
    room: Room = context.room.rooms[env.show_id]
    (conn,) = [c for c in room.connections if c.user_id == env.alice.id]
    return conn


def lane_of(conn: Connection) -> ReceiveLane:
    protocol = conn.websocket.scope[SERVER_SEND].__self__
    reader = protocol.transport.get_protocol()
    assert isinstance(reader, ReceiveLane)
    return reader


def ids(messages: list[dict[str, Any]]) -> list[str | None]:
    return [m.get("reply_to") for m in messages]


def test_coalesced_and_split_frames_are_answered_in_order(app: Starlette, env: RoomEnv, raw: Raw) -> None:
    lane = lane_of(alice_socket(app, env))
    raw.sock.sendall(b"".join(ping_frame(f"p{i}") for i in range(20)))
    assert ids(raw.messages(20)) == [f"p{i}" for i in range(20)]
    # One frame a byte at a time, then one with a 16-bit length whose header is split from its body.
    for byte in ping_frame("slow"):
        raw.sock.sendall(bytes((byte,)))
        time.sleep(0.002)
    long = ping_frame("long", pad=300)
    raw.sock.sendall(long[:3])
    time.sleep(0.05)
    raw.sock.sendall(long[3:])
    assert ids(raw.messages(2)) == ["slow", "long"]
    assert not lane.handed_back


def test_a_frame_alone_in_its_read_is_answered(app: Starlette, env: RoomEnv, raw: Raw) -> None:
    """A whole frame per read (the lane's shortcut), with a 7-bit and a 16-bit length."""
    lane = lane_of(alice_socket(app, env))
    for ident, pad in (("short", 0), ("medium", 200)):
        raw.sock.sendall(ping_frame(ident, pad=pad))
        assert ids(raw.messages(1)) == [ident]
    assert not lane.handed_back


def test_more_frames_than_the_lane_holds_are_all_answered(app: Starlette, env: RoomEnv, raw: Raw) -> None:
    lane = lane_of(alice_socket(app, env))
    count = PAUSE_AT * 6  # the lane stops reading the socket while its task catches up, then goes on
    raw.sock.sendall(b"".join(ping_frame(f"n{i}") for i in range(count)))
    assert ids(raw.messages(count)) == [f"n{i}" for i in range(count)]
    assert not lane.handed_back


def test_a_ping_is_answered_by_the_server_and_the_lane_goes_on(
    app: Starlette, env: RoomEnv, raw: Raw
) -> None:
    lane = lane_of(alice_socket(app, env))
    raw.sock.sendall(ping_frame("a") + frame(PING, b"are you there") + ping_frame("b"))
    seen: list[tuple[int, bytes]] = []
    while len([s for s in seen if s[0] == TEXT and b'"pong"' in s[1]]) < 2:
        seen.append(raw.read())
    assert (PONG, b"are you there") in seen
    texts = [json.loads(p).get("reply_to") for op, p in seen if op == TEXT and b'"pong"' in p]
    assert texts == ["a", "b"]
    assert not lane.handed_back


def test_a_binary_frame_goes_to_the_server_and_the_order_holds(
    app: Starlette, env: RoomEnv, raw: Raw
) -> None:
    lane = lane_of(alice_socket(app, env))
    raw.sock.sendall(ping_frame("before") + frame(BINARY, b"\x00\x01") + ping_frame("after"))
    before, refusal, after = raw.messages(3)
    assert before["reply_to"] == "before" and after["reply_to"] == "after"
    assert refusal["type"] == "error" and "Binary frames" in refusal["reason"]
    assert lane.handed_back
    raw.sock.sendall(ping_frame("later"))  # through ASGI from now on, same answers
    assert ids(raw.messages(1)) == ["later"]


def test_a_hand_back_after_a_full_lane_leaves_the_reading_to_the_server(
    app: Starlette, env: RoomEnv, raw: Raw
) -> None:
    """More frames than the lane holds, then a binary one, in one write: the lane hands back with its
    queue over PAUSE_AT and must not pause the socket the server now reads."""
    lane = lane_of(alice_socket(app, env))
    count = PAUSE_AT + 8
    raw.sock.sendall(b"".join(ping_frame(f"q{i}") for i in range(count)) + frame(BINARY, b"\x00"))
    answers = raw.messages(count + 1)
    assert ids(answers[:count]) == [f"q{i}" for i in range(count)]
    assert answers[-1]["type"] == "error" and "Binary frames" in answers[-1]["reason"]
    assert lane.handed_back
    raw.sock.sendall(ping_frame("still"))
    assert ids(raw.messages(1)) == ["still"]


def test_a_fragmented_message_is_read_whole(app: Starlette, env: RoomEnv, raw: Raw) -> None:
    body = json.dumps({"type": "ping", "id": "parts"}).encode()
    raw.sock.sendall(frame(TEXT, body[:7], fin=False) + frame(CONT, body[7:]) + ping_frame("next"))
    assert ids(raw.messages(2)) == ["parts", "next"]
    assert lane_of(alice_socket(app, env)).handed_back


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        (frame(TEXT, b'{"type": "ping", "id": "\xff"}'), 1007),  # not UTF-8
        (frame(TEXT, ('{"type":"ping","pad":"' + "x" * MAX_FRAME_BYTES + '"}').encode()), CLOSE_TOO_BIG),
        (frame(TEXT, b'{"type": "ping"}', masked=False), 1002),  # a client must mask
        (frame(0x3, b""), 1002),  # a reserved opcode
    ],
    ids=["bad-utf8", "too-big", "unmasked", "reserved-opcode"],
)
def test_what_the_lane_refuses_gets_the_servers_close(raw: Raw, sent: bytes, code: int) -> None:
    # (a frame sent just before may go unanswered: the server fails the connection as it parses)
    raw.sock.sendall(sent)
    assert raw.close_code() == code


def test_a_close_from_the_client_leaves_the_room(app: Starlette, env: RoomEnv, raw: Raw) -> None:
    conn = alice_socket(app, env)
    raw.sock.sendall(frame(CLOSE, struct.pack("!H", 1000)))
    assert raw.close_code() == 1000
    deadline = time.monotonic() + 5
    while not conn.closed:
        assert time.monotonic() < deadline, "the closed socket is still in the room"
        time.sleep(0.02)


def test_a_dropped_connection_leaves_the_room(app: Starlette, env: RoomEnv, raw: Raw) -> None:
    conn = alice_socket(app, env)
    raw.sock.close()
    deadline = time.monotonic() + 5
    while not conn.closed:
        assert time.monotonic() < deadline, "the dropped socket is still in the room"
        time.sleep(0.02)


def test_frames_the_server_queued_before_the_lane_come_first(
    app: Starlette, env: RoomEnv, live_server: LiveServer
) -> None:
    context: AppContext = app.state.ctx
    service = context.room
    assert service is not None
    opened = service.room_for

    async def slow_room_for(show_id: int) -> Room:
        await asyncio.sleep(0.3)  # the frames below reach the server while the join is still on
        return await opened(show_id)

    service.room_for = slow_room_for  # type: ignore[method-assign]
    client = Raw(env, live_server.port, query="")
    try:
        hello = frame(TEXT, b'{"type": "hello", "last_seq": null}')
        client.sock.sendall(hello + b"".join(ping_frame(f"e{i}") for i in range(5)))
        assert ids(client.messages(5)) == [f"e{i}" for i in range(5)]
        lane = lane_of(alice_socket(app, env))
        assert lane.backlog == 0 and lane.queued_before == 6  # all six were read through the server
        client.sock.sendall(b"".join(ping_frame(f"l{i}") for i in range(5)))
        assert ids(client.messages(5)) == [f"l{i}" for i in range(5)]
        assert not lane.handed_back
    finally:
        client.sock.close()


def test_the_send_lane_stops_at_the_servers_close(app: Starlette, env: RoomEnv, raw: Raw) -> None:
    """Once the server has sent its close frame, nothing more goes out on the lane, though the
    transport stays open while the client has not answered the close (it is the state machine's
    CLOSING, not a closing transport, that stops the lane)."""
    conn = alice_socket(app, env)
    assert conn.lane is not None  # the socket has had the room's messages: its lane is looked up
    protocol = conn.websocket.scope[SERVER_SEND].__self__

    async def close_then_write() -> tuple[bool, int]:
        await conn.websocket.close(1001, "going away")
        assert conn.lane is not None
        return protocol.transport.is_closing(), conn.lane.write(text_frame(b'{"type": "late"}'))

    closing, held = asyncio.run_coroutine_threadsafe(close_then_write(), protocol.loop).result(5)
    assert not closing and held == -1
    assert raw.close_code() == 1001
