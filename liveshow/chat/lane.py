"""The fast lane: a server message framed once (RFC 6455 §5.2) and written as the same bytes to every
socket of a room, straight to each socket's transport.

Through the ASGI send path each message costs a chain of coroutines (Starlette's WebSocket, the
middleware's send wrappers, the server's protocol) and a fresh frame per socket. A server frame is
unmasked and, without permessage-deflate, identical for every socket, so it can be built once. The
larger cost in a big room is the write syscall itself (about half the server's CPU in bench/room.py is
in the kernel): the transport's write keeps the GIL during it, ``os.write`` does not, so the database
threads run during a round instead of waiting behind it (chat inserts had waited 100-330 ms).

The lane is used only where it is exactly what the server would have written: uvicorn's
websockets-sansio protocol (what ``liveshow serve`` runs) with no extension negotiated. Anywhere else
``lane_for`` answers None and the room sends through ASGI. Control frames (ping, pong, close) stay
with the server's protocol; both write whole frames to the same transport from the same thread, so
they never interleave inside a frame.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.websockets import WebSocket

# The scope key under which RequestContextMiddleware keeps the ASGI ``send`` the server handed in,
# before any middleware wraps it: for uvicorn, a bound method of the connection's protocol.
SERVER_SEND = "liveshow.server_send"


class Lane:
    """Direct writes to one accepted WebSocket's transport."""

    __slots__ = ("_fd", "_open_state", "_transport", "_ws")

    def __init__(self, protocol: Any, open_state: Any, fd: int) -> None:
        self._transport = protocol.transport
        # The websockets state machine, for its state: read as ``_state``, which is what websockets
        # itself tests before each send, because its public ``state`` is a Python property, a call per
        # socket per round (1 % of the servers' CPU in bench/bids.py).
        self._ws = protocol.conn
        self._open_state = open_state
        self._fd = fd

    def write(self, frame: bytes) -> int:
        """Queue the frame on the socket; the bytes the transport still holds afterwards (how far
        behind the client is), or -1 once the socket can take no more messages (a close was sent or
        received, or the connection is gone), as the ASGI send would have refused it."""
        # Every way uvicorn's protocol stops sending (its close_sent, disconnected) leaves the state
        # machine past OPEN (a close sent or received, a failure) or the transport closing; those two
        # are what is asked here, for each socket of every round.
        transport = self._transport
        if self._ws._state is not self._open_state or transport.is_closing():
            return -1
        held: int = transport.get_write_buffer_size()
        if self._fd >= 0 and not held:
            # Nothing queued: write to the socket ourselves. os.write releases the GIL for the
            # syscall (the transport's own write keeps it), so during a flush's thousands of writes
            # the database threads get to run instead of queueing behind the event loop.
            try:
                sent = os.write(self._fd, frame)
            except BlockingIOError:
                sent = 0
            except OSError:
                return -1  # reset by the peer: the reader side notices and cleans up
            if sent == len(frame):
                return 0
            frame = frame[sent:]
        transport.write(frame)  # may send some at once where nothing was held: ask what it keeps
        after: int = transport.get_write_buffer_size()
        return after

    def abort(self) -> None:
        """Drop the connection and everything still unsent (for a client that stopped reading)."""
        self._transport.abort()


def lane_for(websocket: WebSocket) -> Lane | None:
    """The socket's lane, or None where a direct write would not be what the server itself sends."""
    protocol = getattr(websocket.scope.get(SERVER_SEND), "__self__", None)
    if protocol is None:
        return None
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
        from websockets.protocol import State
    except ImportError:  # pragma: no cover - both come with uvicorn[standard]
        return None
    if not isinstance(protocol, WebSocketsSansIOProtocol) or not protocol.handshake_complete:
        return None
    if protocol.conn.extensions:  # permessage-deflate: every frame would be compressed per socket
        return None
    if not hasattr(protocol.conn, "_state"):  # a websockets whose state is not kept there (see Lane)
        return None
    # Plain TCP only: under TLS the bytes must go through the transport to be encrypted.
    sock = protocol.transport.get_extra_info("socket")
    tls = protocol.transport.get_extra_info("sslcontext") is not None
    fd = sock.fileno() if sock is not None and not tls else -1
    return Lane(protocol, State.OPEN, fd)
