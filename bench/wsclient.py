"""A lean WebSocket client for the benchmarks: handshake, unmasked server frames, ping -> pong, close.

Deliberately minimal (no JSON, no task per message): the clients share the machine with the servers
they measure, so every microsecond they spend is taken from the server.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

from liveshow.chat.wsframes import frame_head


class RawSocket(asyncio.Protocol):
    """A minimal WebSocket client: handshake, unmasked server frames, ping -> pong, close code.

    Deliberately lean (no JSON, no per-message task): the point is to measure the server.
    """

    def __init__(
        self, path: str, host: str, headers: dict[str, str], on_text: Callable[[bytes], None]
    ) -> None:
        self.path, self.host, self.headers, self.on_text = path, host, headers, on_text
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
        self.transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"{extra}\r\n".encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during handshake: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.opened.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(bytes(buf[:end]).decode(errors="replace")))
                return
            del buf[: end + 4]
            self.opened.set_result(None)
        pos, n = 0, len(buf)
        while (found := frame_head(buf, pos)) is not None:
            length, head = found
            opcode = buf[pos] & 0x0F
            if n - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            if opcode in (0, 1):  # the server never fragments its messages
                self.on_text(payload)
            elif opcode == 9:
                self.send_frame(0xA, payload)
            elif opcode == 8:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.send_frame(0x8, payload[:2])
                if self.transport is not None:
                    self.transport.close()
        del buf[:pos]

    def send_frame(self, opcode: int, payload: bytes) -> None:
        """Client frames must be masked (RFC 6455 §5.3)."""
        if self.transport is None or self.transport.is_closing():
            return
        n = len(payload)
        mask = os.urandom(4)
        size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
        masked = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
        self.transport.write(bytes([0x80 | opcode]) + size + mask + masked)


async def open_socket(
    url: str, headers: dict[str, str], on_text: Callable[[bytes], None], timeout: float = 60
) -> RawSocket:
    """Connect to ws://host:port/path?query and complete the handshake."""
    parts = urlsplit(url)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    loop = asyncio.get_running_loop()
    _, sock = await loop.create_connection(
        lambda: RawSocket(target, parts.netloc, headers, on_text), parts.hostname or "", parts.port or 80
    )
    await asyncio.wait_for(sock.opened, timeout)
    return sock
