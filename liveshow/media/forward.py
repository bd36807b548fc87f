"""Packet forwarding, the pure part: what the relay needs to know about each incoming RTP packet, and the
numbering that keeps every viewer's sequence numbers continuous whatever feeds the show.

Numbering. Each packet of a show gets a *show index* per kind (never wrapped, never reused): a source's
packets are numbered by their own extended sequence number from the source's first packet, offset so
that a new source (a publisher reconnecting with a new SSRC and sequence base, a re-air, then the
publisher again) continues right after the highest index so far. A gap between indexes is a packet not
(yet) received, which the viewer sees as a gap it can NACK; the upstream retransmission fills it later.

Classification. For each packet: does a frame start here, can a decoder start here (keyframe), and its
temporal layer (VP8 with a TID in its descriptor; everything else is one layer, 0).

No I/O and no clock.
"""

from __future__ import annotations

from collections.abc import Hashable

from liveshow.media import vp8


class ShowPacket:
    """One packet as the relay forwards it to every viewer: the payload shared, the rest read once."""

    __slots__ = (
        "codec",
        "index",
        "keyframe",
        "layered",
        "marker",
        "marker_bit",
        "payload",
        "picture_id",
        "picture_id_at",
        "picture_id_bits",
        "pts",
        "start",
        "sync",
        "tid",
    )

    def __init__(self, codec: str, index: int, payload: bytes, pts: int, marker: bool) -> None:
        self.codec = codec
        self.index = index
        self.payload = payload
        self.pts = pts
        self.marker = marker
        self.marker_bit = 0x80 if marker else 0  # as the RTP header's second byte carries it
        self.start = True  # the first packet of a frame
        self.keyframe = True  # a decoder can start at this packet
        self.layered = False  # carries a temporal layer id
        self.tid = 0
        self.sync = False  # an upper-layer frame that depends on the base layer only (VP8 Y bit)
        self.picture_id = -1
        self.picture_id_at = -1
        self.picture_id_bits = 0


def classify(packet: ShowPacket, new_timestamp: bool) -> bool:
    """Fill in where frames start, keyframes and layers; False when the payload is malformed.
    ``new_timestamp``: the packet's timestamp differs from the previous packet's (an H.264 access
    unit's first packet carries no flag of its own)."""
    codec = packet.codec
    payload = packet.payload
    if codec == "VP8":
        try:
            desc = vp8.parse(payload)
        except vp8.Vp8DescriptorError:
            return False
        packet.start = desc.frame_start
        packet.keyframe = vp8.is_keyframe_start(payload, desc)
        if desc.tid >= 0:
            packet.layered = True
            packet.tid = desc.tid
            packet.sync = desc.layer_sync
        packet.picture_id = desc.picture_id
        packet.picture_id_at = desc.picture_id_at
        packet.picture_id_bits = desc.picture_id_bits
        return True
    if codec == "H264":
        if not payload:
            return False
        packet.start = new_timestamp
        packet.keyframe = new_timestamp and h264_starts_idr(payload)
        return True
    return bool(payload)  # Opus: every packet is a whole frame a decoder can start at


def h264_starts_idr(payload: bytes) -> bool:
    """Whether an H.264 RTP payload (RFC 6184) carries an SPS or the start of an IDR slice."""
    nal = payload[0] & 0x1F
    if nal in (5, 7):
        return True
    if nal == 24:  # STAP-A: 16-bit sizes, each followed by one NAL unit
        pos = 1
        while pos + 2 < len(payload):
            size = (payload[pos] << 8) | payload[pos + 1]
            if payload[pos + 2] & 0x1F in (5, 7):
                return True
            pos += 2 + size
        return False
    if nal == 28 and len(payload) > 1:  # FU-A: the start fragment names the NAL type
        return bool(payload[1] & 0x80) and payload[1] & 0x1F == 5
    return False


class Unwrapper:
    """Extends a wrapping counter (RTP sequence numbers: 16 bits; timestamps: 32) to a never-wrapping
    one, relative to the highest value seen: a value up to half the range behind it is an older one
    arriving late, not a wrap."""

    __slots__ = ("_half", "_high", "_mask")

    def __init__(self, bits: int) -> None:
        self._mask = (1 << bits) - 1
        self._half = 1 << (bits - 1)
        self._high: int | None = None

    def extend(self, value: int) -> int:
        high = self._high
        if high is None:
            self._high = value
            return value
        delta = (value - high) & self._mask
        if delta >= self._half:
            delta -= self._mask + 1  # behind the highest
        extended = high + delta
        if extended > high:
            self._high = extended
        return extended


class InboundStream:
    """One source SSRC's packets: sequence numbers counted from its first packet, timestamps onto the
    show clock from ``pts_base`` (the show time when the source's first packet came)."""

    __slots__ = ("_first_seq", "_first_ts", "_seq", "_ts", "pts_base")

    def __init__(self, seq: int, timestamp: int, pts_base: int) -> None:
        self._seq = Unwrapper(16)
        self._ts = Unwrapper(32)
        self._first_seq = self._seq.extend(seq)
        self._first_ts = self._ts.extend(timestamp)
        self.pts_base = pts_base

    def map(self, seq: int, timestamp: int) -> tuple[int, int]:
        """(packet number from the source's first, may be negative for one sent before it; pts)."""
        n = self._seq.extend(seq) - self._first_seq
        return n, self.pts_base + self._ts.extend(timestamp) - self._first_ts


class ShowIndex:
    """Show indexes of one kind across the show's sources: each source continues after the highest
    index any earlier source reached."""

    __slots__ = ("_base", "_source", "high", "last_timestamp")

    def __init__(self) -> None:
        self._source: Hashable = None
        self._base = 0
        self.high = -1  # the highest index given so far
        self.last_timestamp = -1  # pts of the packet at ``high``

    def index(self, source: Hashable, n: int) -> tuple[int, bool]:
        """(the show index of the source's packet number ``n``, -1 when it precedes the source's
        first packet; whether this packet began a new source)."""
        changed = source != self._source
        if changed:
            self._source = source
            self._base = self.high + 1
        index = self._base + n
        if index < self._base:
            return -1, changed
        return index, changed
