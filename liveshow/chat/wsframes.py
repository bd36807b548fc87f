"""WebSocket frames as bytes (RFC 6455 §5.2), no I/O: what the send lane writes and what the receive lane
and the benchmark clients read."""

from __future__ import annotations


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked text frame (server to client)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 1 << 16:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return head + payload


def frame_head(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """(payload length, bytes of header before any mask key) of the frame starting at ``pos``; None
    while the header has not all come (RFC 6455 §5.2: a 7-bit length, or 126/127 and 2/8 more bytes)."""
    left = len(buf) - pos
    if left < 2:
        return None
    length = buf[pos + 1] & 0x7F
    if length == 126:
        return (int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4) if left >= 4 else None
    if length == 127:
        return (int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10) if left >= 10 else None
    return length, 2
