"""The receive lane: a client's text frames (RFC 6455 §5.2) read straight off the transport, the
twin of the send lane (chat/lane.py).

Through the server's own path every frame a viewer sends (a bid, a chat line) goes through the
websockets parser's generators and event objects, uvicorn's queue (which pauses and resumes the
socket's reading around every message: two epoll changes each), and the ASGI receive chain: in the
bids benchmark, skipping them saves about 3 % of the servers' CPU (docs/performance.md). A client
frame here is almost always one small, final, masked text frame; the lane parses exactly those and
hands the text to the socket's task.

Anything else goes to the server's parser, which stays at a frame boundary because the lane only
ever consumes whole frames: a ping or a pong is passed on alone (the server answers and keeps its
keepalive), and the lane goes on; anything it does not read itself (close, binary, a fragment, a
frame over the size limit, bad UTF-8, an unmasked frame or reserved bits) is passed on with all
that follows, for good, and from then on the frames come through ASGI as before. That keeps every
refusal and close code the server's own.

Used only where the send lane is: uvicorn's websockets-sansio protocol with no extension.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from starlette.websockets import WebSocket

try:  # the C unmasking websockets itself uses, where its wheel has it
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

from liveshow.chat.lane import SERVER_SEND
from liveshow.chat.wsframes import frame_head

_TEXT, _PING, _PONG = 0x1, 0x9, 0xA
_MAX_CONTROL = 125  # a longer control frame is a protocol error: the server's parser says so
# Frames parsed but not yet taken by the socket's task before the lane stops reading the socket (the
# server's own path stops at one); reading resumes once the task has caught up.
PAUSE_AT = 32
RESUME_AT = 8


class ReceiveLane(asyncio.Protocol):
    """Stands in for the server's protocol as the transport's reader; everything but the reading is
    passed on to it."""

    def __init__(self, server: Any, max_payload: int) -> None:
        self._server = server
        self._transport = server.transport
        self._max_payload = max_payload
        self._buffer = bytearray()
        self._frames: deque[str] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._handed_back = False
        self._lost = False
        self._paused = False
        # Messages the server queued before the lane took over: they come first, through ASGI.
        self.backlog: int = server.queue.qsize()
        self.queued_before = self.backlog  # how many that was: the tests check the path was taken

    @property
    def handed_back(self) -> bool:
        return self._handed_back

    # ------------------------------------------------------------ the transport's side

    def data_received(self, data: bytes) -> None:
        if self._handed_back:
            self._server.data_received(data)
            return
        if not self._buffer and (text := self._one_frame(data)) is not None:
            self._frames.append(text)
            self._took()
            return
        buf = self._buffer
        buf += data
        pos, size = 0, len(buf)
        got = False
        while (found := frame_head(buf, pos)) is not None:
            length, head = found
            b0, b1 = buf[pos], buf[pos + 1]
            opcode = b0 & 0x0F
            # FIN set, no reserved bit (no extension), masked as a client must.
            plain = b0 & 0xF0 == 0x80 and b1 & 0x80
            if not plain or not (
                (opcode == _TEXT and length <= self._max_payload)
                or (opcode in (_PING, _PONG) and length <= _MAX_CONTROL)
            ):
                self._hand_back(buf, pos)
                break
            end = pos + head + 4 + length
            if end > size:
                break  # the rest of the frame is still on its way
            if opcode == _TEXT:
                start = pos + head + 4
                payload = apply_mask(buf[start:end], buf[pos + head : start])
                try:
                    text = payload.decode("utf-8")
                except UnicodeDecodeError:
                    self._hand_back(buf, pos)  # the server closes with 1007
                    break
                self._frames.append(text)
                got = True
            else:
                self._server.data_received(bytes(buf[pos:end]))
            pos = end
        if not self._handed_back:
            del buf[:pos]
        if got:
            self._took()

    def _one_frame(self, data: bytes) -> str | None:
        """The text of ``data`` when it is exactly one final, masked text frame with no reserved bit,
        as nearly every read of a client's socket is (a bid, a chat line); else None, and the general
        path reads it. Saves that path's buffer, its loop and its slices on every frame."""
        if len(data) < 6 or data[0] != 0x81 or not data[1] & 0x80 or (found := frame_head(data, 0)) is None:
            return None
        length, head = found
        if len(data) != head + 4 + length or length > self._max_payload:
            return None
        try:
            return apply_mask(data[head + 4 :], data[head : head + 4]).decode("utf-8")
        except UnicodeDecodeError:
            return None  # the general path hands it to the server, which closes with 1007

    def _took(self) -> None:
        """Frames were added: wake the socket's task; stop reading while it has many to catch up on."""
        self._wake()
        # Once handed back, the socket's reading is the server's to pause and resume.
        if len(self._frames) >= PAUSE_AT and not self._paused and not self._handed_back:
            self._paused = True
            self._transport.pause_reading()

    def _hand_back(self, buf: bytearray, pos: int) -> None:
        self._handed_back = True
        rest = bytes(buf[pos:])
        buf.clear()
        self._wake()
        if rest:
            self._server.data_received(rest)

    def eof_received(self) -> bool | None:
        result: bool | None = self._server.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._wake()
        self._server.connection_lost(exc)

    def pause_writing(self) -> None:
        self._server.pause_writing()

    def resume_writing(self) -> None:
        self._server.resume_writing()

    # ------------------------------------------------------------ the socket task's side

    async def receive(self) -> str | None:
        """The next text frame the lane read; None once there will be no more from it (handed back
        to the server's parser, or the connection is gone): read through ASGI from then on."""
        while not self._frames:
            if self._handed_back or self._lost:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        text = self._frames.popleft()
        if self._paused and len(self._frames) <= RESUME_AT and not self._handed_back:
            self._paused = False
            self._transport.resume_reading()
        return text

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def receive_lane_for(websocket: WebSocket, max_payload: int) -> ReceiveLane | None:
    """Put a receive lane in front of an accepted socket's protocol; None where the frames must go
    through the server (another ASGI server or protocol, an extension, TLS)."""
    protocol = getattr(websocket.scope.get(SERVER_SEND), "__self__", None)
    if protocol is None:
        return None
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:  # pragma: no cover - comes with uvicorn[standard]
        return None
    if not isinstance(protocol, WebSocketsSansIOProtocol) or not protocol.handshake_complete:
        return None
    transport = protocol.transport
    if protocol.conn.extensions or protocol.disconnected or transport.is_closing():
        return None
    if transport.get_extra_info("sslcontext") is not None:
        return None  # `liveshow serve` speaks plain HTTP behind a proxy; TLS here is untried, so untouched
    lane = ReceiveLane(protocol, max_payload)
    transport.set_protocol(lane)
    return lane
