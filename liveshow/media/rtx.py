"""Retransmission, the pure part: a show's recent packets kept once, and the RFC 4588 packet that
resends one.

The relay rewrites every packet per viewer (SSRC, sequence number, timestamp; see ``relay``), so a
viewer's NACK names sequence numbers that exist only for that viewer. The cache is therefore keyed by
the show's own packet index (``forward.ShowIndex``: one counter per show and kind, never wrapped), and
each viewer's track remembers which show index each of its recent sequence numbers carried (a ring as
long as the cache: one list store per packet sent).

No I/O and no clock: ``now`` is passed in.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from liveshow.media.forward import ShowPacket

# How much a show keeps: enough packets for ~1.4 s of an 8 Mbps stream, and never anything older than
# MAX_AGE (a packet resent later than that reaches a player that has long given up on it; a keyframe
# serves it better).
CACHE_PACKETS = 1024
MAX_AGE = 1.5  # seconds
# How long a packet the publisher's link lost is awaited: its retransmission (aiortc NACKs upstream)
# normally comes within a round trip; a viewer asking for it later gets a keyframe instead.
AWAIT_UPSTREAM = 0.5  # seconds
MAX_AWAITED = 128  # packets awaited at once; older gaps are given up
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
    pending: int = 0  # asked for while still missing upstream too: sent when its retransmission comes
    repeated: int = 0  # asked for again within a round trip of its resend: that one is still on its way


def resend_allowance(sent: int, resent: int) -> int:
    """How many more packets a viewer that was sent ``sent`` and resent ``resent`` may have resent."""
    return max(0, RESEND_BURST + sent // RESEND_SHARE - resent)


class PacketCache:
    """One show's recent packets of one kind, in a ring of ``size`` slots indexed by the show's packet
    index. The packets themselves are kept (the same objects every viewer was sent): adding one
    allocates nothing."""

    __slots__ = ("_awaited", "_packets", "_time", "max_age", "size")

    def __init__(self, size: int = CACHE_PACKETS, max_age: float = MAX_AGE) -> None:
        if size < 1:
            raise ValueError("a packet cache needs at least one slot")
        self.size = size
        self.max_age = max_age
        self._packets: list[ShowPacket | None] = [None] * size
        self._time = [0.0] * size
        self._awaited: dict[int, float] = {}  # show index not received yet -> since when

    def add(self, packet: ShowPacket, now: float) -> None:
        """Keep one packet under its show index (a late one only if its slot holds nothing newer)."""
        slot = packet.index % self.size
        if self._awaited:
            self._awaited.pop(packet.index, None)
        held = self._packets[slot]
        if held is not None and held.index > packet.index:
            return
        self._packets[slot] = packet
        self._time[slot] = now

    def await_gap(self, first: int, end: int, now: float) -> None:
        """Packets ``first`` .. ``end - 1`` did not come in order: they may still come (resent)."""
        awaited = self._awaited
        for index in range(max(first, end - MAX_AWAITED), end):
            awaited[index] = now
        while len(awaited) > MAX_AWAITED:
            del awaited[next(iter(awaited))]

    def awaited(self, index: int, now: float) -> bool:
        """Whether this packet is missing upstream but may still come (within AWAIT_UPSTREAM)."""
        since = self._awaited.get(index)
        return since is not None and now - since <= AWAIT_UPSTREAM

    def get(self, index: int, now: float) -> ShowPacket | None:
        """The packet with this show index, or None if evicted, too old or never received."""
        if index < 0:
            return None
        slot = index % self.size
        packet = self._packets[slot]
        if packet is None or packet.index != index or now - self._time[slot] > self.max_age:
            return None
        return packet


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
