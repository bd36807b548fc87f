"""Retransmission, the pure part: a show's recent packets kept once, which of them a viewer's sequence
number carried, and the RFC 4588 packet that resends one.

The relay rewrites every packet per viewer (SSRC, sequence number, timestamp; see ``relay``), so a
viewer's NACK names sequence numbers that exist only for that viewer. The cache is therefore keyed by
the show's own packet index (one counter per show and kind, never wrapped), and each viewer keeps the
few *runs* of consecutive show packets it was sent: a viewer that joins, or skips to the next keyframe
after being dropped, starts a new run; otherwise its sequence numbers follow the show's packets one to
one. A lookup walks back from the viewer's next sequence number to the packet count, then to the run
and the show's index. Nothing here is done per packet per viewer: the send path only compares one
integer per frame (``ViewerOutput.send``).

No I/O and no clock: ``now`` is passed in.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# How much a show keeps: enough packets for ~1.4 s of an 8 Mbps stream, and never anything older than
# MAX_AGE (a packet resent later than that reaches a player that has long given up on it; a keyframe
# serves it better).
CACHE_PACKETS = 1024
MAX_AGE = 1.5  # seconds
MAX_RUNS = 16  # runs a viewer remembers; older ones fall back to a keyframe request
# What one viewer may have resent: a burst, then one packet for every RESEND_SHARE packets sent to it. A
# real lossy link stays far below (5 % loss resends ~1 in 20); a viewer NACKing everything cannot make
# the relay spend more than half again its normal work on it.
RESEND_BURST = 256
RESEND_SHARE = 2

RTP_HEADER = struct.Struct("!BBHII")
# RFC 4588 section 4: the RTX packet is the original's header rewritten to the RTX payload type, SSRC
# and the RTX stream's own sequence number, followed by the original sequence number (OSN).
RTX_HEADER = struct.Struct("!BBHIIH")


@dataclass(slots=True)
class RtxCounts:
    """What the process's relays did with viewers' NACKs (exported as Prometheus counters)."""

    nacked: int = 0  # sequence numbers viewers asked for
    resent: int = 0  # packets sent again (RTX, or the original where RTX is not negotiated)
    missing: int = 0  # asked for but no longer cached (or never sent): a keyframe request instead
    refused: int = 0  # asked for past the viewer's resend allowance (``resend_allowance``)


def resend_allowance(sent: int, resent: int) -> int:
    """How many more packets a viewer that was sent ``sent`` and resent ``resent`` may have resent."""
    return max(0, RESEND_BURST + sent // RESEND_SHARE - resent)


class PacketCache:
    """One show's recent packets of one kind, in a ring of ``size`` slots indexed by the show's packet
    index. Parallel lists, filled once: adding a packet allocates nothing."""

    __slots__ = ("_index", "_marker", "_payload", "_pts", "_time", "max_age", "next_index", "size")

    def __init__(self, size: int = CACHE_PACKETS, max_age: float = MAX_AGE) -> None:
        if size < 1:
            raise ValueError("a packet cache needs at least one slot")
        self.size = size
        self.max_age = max_age
        self.next_index = 0  # the show index the next packet gets
        self._index = [-1] * size
        self._payload: list[bytes] = [b""] * size
        self._pts = [0] * size
        self._marker = [False] * size
        self._time = [0.0] * size

    def add_frame(self, payloads: list[bytes], pts: int, marked: bool, now: float) -> int:
        """Keep a frame's payloads; returns the show index of the first. ``marked``: the last payload
        carries the RTP marker (video)."""
        first = self.next_index
        size = self.size
        index = first
        for payload in payloads:
            slot = index % size
            self._index[slot] = index
            self._payload[slot] = payload
            self._pts[slot] = pts
            self._marker[slot] = False
            self._time[slot] = now
            index += 1
        if marked and payloads:
            self._marker[(index - 1) % size] = True
        self.next_index = index
        return first

    def get(self, index: int, now: float) -> tuple[bytes, int, bool] | None:
        """(payload, pts, marker) of the packet with this show index, or None if evicted or too old."""
        if index < 0:
            return None
        slot = index % self.size
        if self._index[slot] != index or now - self._time[slot] > self.max_age:
            return None
        return self._payload[slot], self._pts[slot], self._marker[slot]


class SentRuns:
    """Which show packets one viewer's stream carried, as runs of consecutive show indexes.

    The viewer's n-th packet (counting from 0) had sequence number ``first_seq + n`` (mod 2^16); a run
    ``(n0, i0)`` says packets n0, n0+1, ... were show packets i0, i0+1, ... up to the next run.
    """

    __slots__ = ("_origins", "_starts", "next_index")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._origins: list[int] = []
        self.next_index = -1  # the show index that continues the current run

    def start(self, count: int, index: int) -> None:
        """The viewer's packet number ``count`` is show packet ``index`` and does not follow the last."""
        if self._starts and self._starts[-1] == count:
            self._origins[-1] = index  # the previous run sent nothing
        else:
            self._starts.append(count)
            self._origins.append(index)
            if len(self._starts) > MAX_RUNS:
                del self._starts[0], self._origins[0]

    def index_of(self, seq: int, next_seq: int, count: int, window: int) -> int:
        """The show index of the viewer's packet with sequence number ``seq``, given the sequence number
        and count its next packet will have; -1 when it is older than ``window`` packets, in the future,
        before the viewer's first packet, or in a run no longer remembered."""
        back = (next_seq - seq) & 0xFFFF
        if back == 0 or back > window:
            return -1
        n = count - back
        if n < 0:
            return -1
        starts = self._starts
        for k in range(len(starts) - 1, -1, -1):
            if starts[k] <= n:
                return self._origins[k] + (n - starts[k])
        return -1


def rtx_packet(
    payload: bytes, marker: bool, rtx_pt: int, rtx_seq: int, timestamp: int, rtx_ssrc: int, original_seq: int
) -> bytes:
    """An RFC 4588 retransmission of a packet the viewer saw as ``original_seq``: the RTX payload type,
    SSRC and sequence number, the original timestamp and marker, the original sequence number in the
    first two payload bytes, then the original payload."""
    return (
        RTX_HEADER.pack(0x80, (0x80 if marker else 0) | rtx_pt, rtx_seq, timestamp, rtx_ssrc, original_seq)
        + payload
    )


def plain_packet(payload: bytes, marker: bool, pt: int, seq: int, timestamp: int, ssrc: int) -> bytes:
    """The original packet again, for a viewer that did not negotiate RTX (RFC 4585 allows it)."""
    return RTP_HEADER.pack(0x80, (0x80 if marker else 0) | pt, seq, timestamp, ssrc) + payload
