"""The relay: one show's RTP packets fanned out to every viewer as they arrive, without decoding or encoding.

A publisher's packets come straight from its receiver (after SRTP, RTX unwrapping and aiortc's NACKs
upstream; see ``peers.PacketTap``), numbered on the show (``forward.ShowIndex``) and read once
(``forward.classify``: frame starts, keyframes, VP8 temporal layers). A frame source (a re-air) has its
frames packetized once (``Packetizer``) and goes the same way. Payloads are shared; per viewer only the
RTP header (SSRC, sequence number, timestamp, payload type) is written, then SRTP protect and a UDP
``sendto`` on the viewer's nominated ICE pair, synchronously: no per-packet coroutine chain, no
per-viewer task. Nothing waits for a whole frame, so the relay adds no frame interval of delay.

Each viewer's sequence numbers are the show's indexes plus its own offset: a packet lost upstream is a
gap the viewer NACKs (and the upstream retransmission fills, sent under the number kept for it); a
packet the viewer is not sent (a temporal layer above its own, see ``layers``) shifts the offset so it
leaves no gap. A viewer joins, and resumes after being dropped or after the source changed, at a
keyframe, continuing its own numbering.

A slow viewer never slows the others: the send is non-blocking and each viewer's socket buffer is
bounded (``MAX_BUFFERED``); past it the viewer's video is dropped until the next keyframe, which is
requested upstream. Keyframe requests (a viewer joins, reports PLI/FIR, or was dropped) are shared by
the whole show and rate-limited (``KeyframeRequests``).

Video first sends carry abs-send-time where the viewer offered it (one header extension element,
packed with the header): its receiver estimates its link from the delay its packets gain and says so
in REMB, which ``estimate`` hands the viewer's layer policy; a link's queue that keeps growing steps
the viewer down before it overflows.

Lost packets are resent: the show keeps its recent video packets once (``rtx.PacketCache``, the same
shared packets), each viewer's track remembers which show index each of its recent sequence numbers
carried (a ring: a few list stores per packet), and a viewer's NACK is answered from the cache,
rewritten for that viewer, as RTX where negotiated (``ShowRelay.resend``). Only a packet the cache no
longer holds costs a keyframe request.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable, Hashable
from typing import Any

from aiortc import clock

from liveshow.media.forward import ShowIndex, ShowPacket, classify
from liveshow.media.frames import EncodedFrame, MediaSink
from liveshow.media.layers import BACKLOG_DOWN, TOP_LAYER, LayerCounts, LayerPolicy
from liveshow.media.packets import Packetizer
from liveshow.media.rtx import (
    CACHE_PACKETS,
    PacketCache,
    RtxCounts,
    plain_packet,
    resend_allowance,
    rtx_packet,
)
from liveshow.media.vp8 import with_picture_id

log = logging.getLogger(__name__)

RTP_HEADER = struct.Struct("!BBHII")
# The same with one header extension element (RFC 8285 one-byte form): abs-send-time, 24 bits of
# seconds in 6.18 fixed point, from which the viewer's receiver estimates its link (REMB, see layers).
RTP_HEADER_SEND_TIME = struct.Struct("!BBHIIHHI")
ONE_BYTE_EXTENSIONS = 0xBEDE
# Bytes a viewer's UDP socket may hold unsent before its video drops to the next keyframe.
MAX_BUFFERED = 256 * 1024
KEYFRAME_INTERVAL = 0.5  # seconds between two keyframe requests to the publisher
# A viewer remembers the show index of its last SENT_RING sequence numbers (as many as the cache holds).
SENT_RING = CACHE_PACKETS
SENT_MASK = SENT_RING - 1
assert SENT_RING & SENT_MASK == 0, "the sent ring's size must be a power of two"
# Packets missing upstream that a viewer keeps a sequence number for, waiting for their retransmission.
MAX_HOLES = 128
# A packet resent to a viewer is not resent again before a round trip has passed (the sender's RTT from
# the viewer's receiver reports, at least RESEND_GAP, at most MAX_RESEND_GAP): an earlier NACK for it
# asks for a resend still on its way (aiortc viewers NACK every missing packet again at each new hole),
# and on a narrow link each needless copy queues ahead of the picture.
RESEND_GAP = 0.05
MAX_RESEND_GAP = 0.5
# A viewer held under the top layer is congested: its resends come out of a credit of one packet per
# CONGESTED_SHARE packets sent to it, at most CONGESTED_BURST at once (the allowance alone let a narrow
# link's NACKs resend far more than the link carries, and the loss that caused kept it congested).
CONGESTED_SHARE = 4
CONGESTED_BURST = 16
# For this long after a step down none is resent: the link's queue still holds what the layer left
# sent (up to its length: a quarter second is common) and a resend would be dropped behind it, the
# credit spent for nothing. The viewer asks again (aiortc at its next hole, browsers each round trip).
QUIET_AFTER_DOWN = 0.3
ALL_LAYERS = 255  # a viewer with no layer policy takes every layer
FRAMES: Hashable = "frames"  # the source key of packets made from a frame source's frames


class KeyframeRequests:
    """Coalesces keyframe wishes: at most one upstream request per interval, none lost."""

    def __init__(self, send: Callable[[], None], interval: float = KEYFRAME_INTERVAL) -> None:
        self.send = send
        self.interval = interval
        self._last = -1e9
        self._pending: asyncio.TimerHandle | None = None
        self.sent = 0

    def want(self) -> None:
        if self._pending is not None:
            return
        wait = self._last + self.interval - time.monotonic()
        if wait <= 0:
            self._fire()
        else:
            self._pending = asyncio.get_running_loop().call_later(wait, self._fire)

    def _fire(self) -> None:
        self._pending = None
        self._last = time.monotonic()
        self.sent += 1
        try:
            self.send()
        except Exception:
            log.exception("keyframe request failed")

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


class OutTrack:
    """The per-viewer rewrite state of one outgoing stream."""

    __slots__ = (
        "codec",
        "credit",
        "credit_mark",
        "delta",
        "high",
        "holes",
        "layer",
        "nacked_high",
        "octets",
        "packets",
        "pid_delta",
        "pt",
        "rate_mark",
        "resent",
        "resent_at",
        "rtx_pt",
        "rtx_seq",
        "rtx_ssrc",
        "send_time_id",
        "sender",
        "sent",
        "sent_pid",
        "ssrc",
        "ts_offset",
        "waiting",
    )

    def __init__(
        self,
        sender: Any,
        pt: int,
        codec: str,
        seq: int,
        ts_offset: int,
        rtx_pt: int | None = None,
        rtx_seq: int = 0,
        send_time_id: int = 0,
    ) -> None:
        self.sender = sender
        self.ssrc: int = sender._ssrc
        self.pt = pt
        self.codec = codec
        self.ts_offset = ts_offset
        self.waiting = True  # nothing is sent before a packet a decoder can start at
        # Sequence number = (show index + delta) mod 2^16; ``high``: the highest show index this track
        # has passed (sent, skipped or missing). The next new packet's number is ``seq``.
        self.high = -1
        self.delta = seq
        self.holes: dict[int, int] = {}  # show index missing upstream -> the sequence number kept for it
        self.layer = ALL_LAYERS  # the highest temporal layer sent
        self.pid_delta = 0  # VP8 frames not sent: PictureID = original - pid_delta
        self.packets = 0
        self.octets = 0
        # Per sequence number slot: the show index it carried (-1: none) and the PictureID shift it was
        # sent with. Every number of the last SENT_RING is written (sent, or kept for a missing packet)
        # or cleared, so a slot within that window answers for exactly its number.
        self.sent = [-1] * SENT_RING
        self.sent_pid = [0] * SENT_RING
        # RFC 4588: the RTX stream has its own payload type, SSRC (the one the answer announced in its
        # FID group) and sequence numbers; None: resend the original packet itself.
        self.rtx_pt = rtx_pt
        self.rtx_ssrc: int = sender._rtx_ssrc
        self.rtx_seq = rtx_seq
        self.resent = 0
        self.resent_at: dict[int, float] = {}  # sequence number -> when last resent, within a round trip
        self.nacked_high = -1  # the highest show index NACKed: a NACK above it is a new loss
        self.credit = float(CONGESTED_BURST)  # resends left while congested
        self.credit_mark = 0  # ``packets`` when the credit was last topped up
        # The abs-send-time extension's id as the viewer negotiated it (1-14); 0: not negotiated.
        self.send_time_id = send_time_id
        # (when, octets) twice: the rate this viewer was sent over the last 0.5-1.5 s (its estimates')
        self.rate_mark = [(-1.0, 0), (-1.0, 0)]

    @property
    def seq(self) -> int:
        """The sequence number the next new packet gets."""
        return (self.high + 1 + self.delta) & 0xFFFF

    def index_of(self, seq: int) -> int:
        """The show index sequence number ``seq`` carried (or was kept for); -1: none in the ring."""
        back = (self.seq - seq) & 0xFFFF
        return self.sent[seq & SENT_MASK] if 0 < back <= SENT_RING else -1


class ViewerOutput:
    """Sends shared payloads to one viewer over its SRTP session and nominated ICE pair."""

    def __init__(self, tracks: dict[str, OutTrack], srtp: Any, udp: Any, addr: Any) -> None:
        self.tracks = tracks
        self._protect = srtp.protect
        self._udp = udp
        self._addr = addr
        self.dropped_frames = 0
        self.closed = False

        # Set by the relay when the viewer is added: its layer policy (None: every layer) and the
        # process's layer counters.
        self.policy: LayerPolicy | None = None
        self.layer_counts = LayerCounts()

    def forward(self, kind: str, packet: ShowPacket, ntp: int, send_time: int = 0) -> bool:
        """Send one packet; returns False when the viewer needs a keyframe (it was dropped).
        ``ntp``: the wall clock for the sender report, 0 when this packet does not end a frame;
        ``send_time``: now as abs-send-time, for a viewer that negotiated it."""
        track = self.tracks.get(kind)
        if track is None or self.closed:
            return True
        if track.codec != packet.codec:
            return True  # the publisher changed codec; the service closes this viewer
        index = packet.index
        if index <= track.high:
            # Late: an upstream retransmission of a packet this viewer kept a number for.
            if track.waiting:
                return True
            seq = track.holes.pop(index, -1)
            if seq < 0 or packet.tid > track.layer:
                return True
        else:
            if packet.start:
                udp = self._udp
                if udp.is_closing():
                    self.closed = True
                    return True
                buffered = udp.get_write_buffer_size()
                if buffered > MAX_BUFFERED:
                    self.dropped_frames += 1
                    track.waiting = True
                    return kind != "video"
                if track.waiting:
                    if not packet.keyframe:
                        return True
                    track.waiting = False
                    track.delta = track.high + 1 + track.delta - index  # continue its own numbering
                    track.high = index - 1
                    track.holes.clear()
                if packet.layered and self.policy is not None:
                    self._switch(track, packet, buffered, self.policy)
            elif track.waiting:
                return True
            if index - track.high > 1:
                self._keep_holes(track, index)
            track.high = index
            if packet.tid > track.layer:
                # Not sent: later packets move up one number, so this one leaves no gap to NACK.
                track.delta -= 1
                if packet.start and packet.picture_id >= 0:
                    track.pid_delta += 1
                if packet.tid <= ALL_LAYERS:  # not padding
                    self.layer_counts.dropped += 1
                return True
            seq = (index + track.delta) & 0xFFFF
        payload = packet.payload
        pid_delta = track.pid_delta
        if pid_delta and packet.picture_id_at >= 0:
            payload = with_picture_id(
                payload, packet.picture_id_at, packet.picture_id_bits, packet.picture_id - pid_delta
            )
        ts = (track.ts_offset + packet.pts) & 0xFFFFFFFF
        if track.send_time_id:
            header = RTP_HEADER_SEND_TIME.pack(
                0x90,
                packet.marker_bit | track.pt,
                seq,
                ts,
                track.ssrc,
                ONE_BYTE_EXTENSIONS,
                1,
                track.send_time_id << 28 | 2 << 24 | send_time,
            )
        else:
            header = RTP_HEADER.pack(0x80, packet.marker_bit | track.pt, seq, ts, track.ssrc)
        self._udp.sendto(self._protect(header + payload), self._addr)
        slot = seq & SENT_MASK
        track.sent[slot] = index
        track.sent_pid[slot] = pid_delta
        track.packets += 1
        track.octets += len(payload)
        if ntp:
            # Keep the sender's RTCP sender reports truthful (A/V sync and RTT in the viewer).
            sender = track.sender
            sender._RTCRtpSender__ntp_timestamp = ntp
            sender._RTCRtpSender__rtp_timestamp = ts
            sender._RTCRtpSender__packet_count = track.packets
            sender._RTCRtpSender__octet_count = track.octets
        return True

    def _keep_holes(self, track: OutTrack, index: int) -> None:
        """Packets up to ``index`` never came (yet): keep each its number, for its retransmission; the
        numbers of any older ones than MAX_HOLES answer nothing."""
        delta = track.delta
        holes = track.holes
        sent = track.sent
        kept = max(track.high + 1, index - MAX_HOLES)
        for missing in range(max(track.high + 1, kept - SENT_RING), kept):
            sent[(missing + delta) & SENT_MASK] = -1
        for missing in range(kept, index):
            seq = (missing + delta) & 0xFFFF
            holes[missing] = seq
            slot = seq & SENT_MASK
            sent[slot] = missing
            track.sent_pid[slot] = track.pid_delta
        while len(holes) > MAX_HOLES:
            del holes[next(iter(holes))]

    def _switch(self, track: OutTrack, packet: ShowPacket, buffered: int, policy: LayerPolicy) -> None:
        """At a frame start: follow the policy's target, down at once, up where decodable."""
        if buffered > BACKLOG_DOWN:
            policy.backlog(time.monotonic(), buffered)
        target = policy.target
        layer = track.layer
        if layer > TOP_LAYER:
            layer = track.layer = TOP_LAYER
        if target < layer:
            track.layer = target
            self.layer_counts.down += 1
        elif target > layer:
            if packet.keyframe:
                track.layer = target  # a keyframe refreshes every reference: all layers decode
            elif packet.sync and packet.tid == layer + 1:
                track.layer = packet.tid  # this frame needs only the base layer: the next layer starts
            else:
                return
            self.layer_counts.up += 1

    def resend(
        self, kind: str, seqs: list[int], cache: PacketCache, now: float
    ) -> tuple[int, int, int, int, int]:
        """Answer a NACK from the show's cache: returns (packets resent, packets no longer cached,
        packets refused past this viewer's allowance or congested credit, packets still missing
        upstream: they are sent when the publisher's retransmission comes, packets resent less than a
        round trip ago: that resend is still on its way)."""
        track = self.tracks.get(kind)
        if track is None or self.closed:
            return 0, 0, 0, 0, 0
        udp = self._udp
        if udp.is_closing():
            self.closed = True
            return 0, 0, 0, 0, 0
        policy = self.policy
        if policy is not None:
            # First NACKs of packets are the link's loss, a round trip after it: the policy's fast signal.
            high = nacked_high = track.nacked_high
            lost = 0
            for seq in seqs:
                index = track.index_of(seq)
                if index > nacked_high:
                    lost += 1
                    high = max(high, index)
            if lost:
                track.nacked_high = high
                policy.nacked(now, lost, track.packets)
        resent_at = track.resent_at
        repeated = 0
        if resent_at:
            rtt = getattr(track.sender, "_RTCRtpSender__rtt", None)
            gap = RESEND_GAP if rtt is None else min(MAX_RESEND_GAP, max(RESEND_GAP, rtt))
            for old in [s for s, at in resent_at.items() if now - at >= gap]:
                del resent_at[old]
            if resent_at:
                fresh = [s for s in seqs if s & 0xFFFF not in resent_at]
                repeated = len(seqs) - len(fresh)
                seqs = fresh
        allowed = resend_allowance(track.packets, track.resent)
        if policy is not None and now - policy.last_down < QUIET_AFTER_DOWN:
            allowed = 0
        congested = track.layer < TOP_LAYER
        if congested:
            earned = (track.packets - track.credit_mark) / CONGESTED_SHARE
            track.credit = min(float(CONGESTED_BURST), track.credit + earned)
            allowed = min(allowed, int(track.credit))
        else:
            track.credit = float(CONGESTED_BURST)
        track.credit_mark = track.packets
        refused = max(0, len(seqs) - allowed)
        if refused:
            seqs = seqs[:allowed]
        resent = missing = pending = 0
        for seq in seqs:
            seq &= 0xFFFF
            slot = seq & SENT_MASK
            index = track.index_of(seq)
            hit = cache.get(index, now)
            if hit is None:
                if cache.awaited(index, now):
                    pending += 1  # lost on the way in too: aiortc has NACKed it upstream already
                else:
                    missing += 1
                continue
            if udp.get_write_buffer_size() > MAX_BUFFERED:
                break  # congested: forward() drops it to the next keyframe; more packets help no one
            payload = hit.payload
            pid_delta = track.sent_pid[slot]
            if pid_delta and hit.picture_id_at >= 0:
                payload = with_picture_id(
                    payload, hit.picture_id_at, hit.picture_id_bits, hit.picture_id - pid_delta
                )
            ts = (track.ts_offset + hit.pts) & 0xFFFFFFFF
            if track.rtx_pt is not None:
                packet = rtx_packet(payload, hit.marker, track.rtx_pt, track.rtx_seq, ts, track.rtx_ssrc, seq)
                track.rtx_seq = (track.rtx_seq + 1) & 0xFFFF
            else:
                packet = plain_packet(payload, hit.marker, track.pt, seq, ts, track.ssrc)
            udp.sendto(self._protect(packet), self._addr)
            resent_at[seq] = now
            resent += 1
        track.resent += resent
        if congested:
            track.credit -= resent
        return resent, missing, refused, pending, repeated


class ShowRelay:
    """One show's fan-out point: packets in (publisher) or frames in (re-air), packets out to viewers,
    frames to sinks."""

    def __init__(
        self,
        show_id: int,
        request_keyframe: Callable[[], None],
        rtx: RtxCounts | None = None,
        resend: bool = True,
        layers: bool = True,
        layer_counts: LayerCounts | None = None,
    ) -> None:
        self.show_id = show_id
        self.outputs: dict[str, ViewerOutput] = {}
        self.sinks: list[MediaSink] = []
        self.keyframes = KeyframeRequests(request_keyframe)
        self._packetizer = Packetizer()
        # Video only: players NACK video (audio is negotiated without NACK, a lost 20 ms is concealed).
        # resend=False (LIVESHOW_RELAY_RTX off): no cache, every NACK costs a keyframe request.
        self.caches: dict[str, PacketCache] = {"video": PacketCache()} if resend else {}
        # layers=False (LIVESHOW_RELAY_LAYERS off): every viewer is sent every layer.
        self.layers = layers
        self.rtx = rtx if rtx is not None else RtxCounts()
        self.layer_counts = layer_counts if layer_counts is not None else LayerCounts()
        self.indexes = {"video": ShowIndex(), "audio": ShowIndex()}
        self._frame_packets = {"video": 0, "audio": 0}  # packets made from a frame source's frames
        self.frames_in = 0
        self.packets_in = 0

    def push(self, frame: EncodedFrame) -> None:
        """A frame source's frame: to the sinks, then packetized once and forwarded."""
        self.to_sinks(frame)
        if not self.outputs:
            return
        payloads = self._packetizer.payloads(frame)
        kind = frame.kind
        n = self._frame_packets.get(kind, 0)
        self._frame_packets[kind] = n + len(payloads)
        last = len(payloads) - 1
        video = kind == "video"
        for i, payload in enumerate(payloads):
            self.forward(kind, frame.codec, FRAMES, n + i, payload, frame.pts, video and i == last)

    def to_sinks(self, frame: EncodedFrame) -> None:
        """A whole frame for the sinks (the recorder), which take frames, not packets."""
        self.frames_in += 1
        for sink in self.sinks:
            try:
                sink.on_frame(frame)
            except Exception:
                log.exception("media sink failed on a frame of show %s", self.show_id)

    def forward(
        self, kind: str, codec: str, source: Hashable, n: int, payload: bytes, pts: int, marker: bool
    ) -> None:
        """One RTP packet of a source: its ``n``-th from the source's first (by sequence number), its
        timestamp already on the show clock (``pts``)."""
        show_index = self.indexes.get(kind)
        if show_index is None:
            return
        index, new_source = show_index.index(source, n)
        if index < 0:
            return
        if new_source and kind == "video" and show_index.high >= 0:
            # Another encoder after an earlier one: no viewer's decoder can go on from the last one's
            # pictures.
            for output in self.outputs.values():
                track = output.tracks.get(kind)
                if track is not None:
                    track.waiting = True
            self.keyframes.want()
        new_timestamp = False
        cache = self.caches.get(kind)
        now = time.monotonic()
        if index > show_index.high:
            if cache is not None and index > show_index.high + 1 and not new_source:
                cache.await_gap(show_index.high + 1, index, now)
            new_timestamp = pts != show_index.last_timestamp
            show_index.high = index
            show_index.last_timestamp = pts
        packet = ShowPacket(codec, index, payload, pts, marker)
        if not classify(packet, new_timestamp):
            # Padding or malformed: no viewer is sent it, none sees a gap, nobody starts at it.
            packet.start = packet.keyframe = False
            packet.tid = ALL_LAYERS + 1
        self.packets_in += 1
        if cache is not None:
            cache.add(packet, now)
        if not self.outputs:
            return
        ntp = clock.current_ntp_time() if (marker or kind != "video") else 0
        # abs-send-time: seconds mod 64 in 6.18 fixed point (the Unix and NTP epochs are 64 s apart
        # a whole number of times, so Unix time serves).
        send_time = int(time.time() * 262144) & 0xFFFFFF if kind == "video" else 0
        need_keyframe = False
        for output in self.outputs.values():
            try:
                if not output.forward(kind, packet, ntp, send_time):
                    need_keyframe = True
            except Exception:
                # e.g. SRTP protect after the session closed: this viewer is gone, the others go on.
                output.closed = True
                log.debug("viewer send failed", exc_info=True)
        if need_keyframe:
            self.keyframes.want()

    def resend(self, output: ViewerOutput, kind: str, seqs: list[int]) -> None:
        """A viewer's NACK: resend what the cache holds; what it lost for good needs a keyframe."""
        self.rtx.nacked += len(seqs)
        cache = self.caches.get(kind)
        if cache is None:
            self.rtx.missing += len(seqs)
            self.keyframes.want()
            return
        try:
            resent, missing, refused, pending, repeated = output.resend(kind, seqs, cache, time.monotonic())
        except Exception:
            output.closed = True  # as in forward: SRTP protect after the session closed
            log.debug("viewer resend failed", exc_info=True)
            return
        self.rtx.resent += resent
        self.rtx.missing += missing
        self.rtx.refused += refused
        self.rtx.pending += pending
        self.rtx.repeated += repeated
        if missing:
            self.keyframes.want()

    def report(self, output: ViewerOutput, fraction_lost: float) -> None:
        """A viewer's receiver report on its video: its layer policy judges its link."""
        if output.policy is not None:
            output.policy.report(time.monotonic(), fraction_lost)

    def estimate(self, output: ViewerOutput, bitrate: int) -> None:
        """A viewer's receiver estimate of its link (REMB, bits/s): its layer policy reads it against
        what the viewer was sent."""
        track = output.tracks.get("video")
        if output.policy is None or track is None:
            return
        now = time.monotonic()
        older, newer = track.rate_mark
        if now - newer[0] >= 0.5:
            older, newer = track.rate_mark = [newer, (now, track.octets)]
        if older[0] < 0:
            return  # not a half second of sending to judge by yet
        output.policy.estimate(now, bitrate, (track.octets - older[1]) * 8 / (now - older[0]))

    def add_output(self, session_id: str, output: ViewerOutput, adapt: bool = True) -> None:
        """``adapt``: the viewer's layers follow its link (else it takes every layer: an edge's pull)."""
        output.layer_counts = self.layer_counts
        output.policy = LayerPolicy(time.monotonic()) if self.layers and adapt else None
        self.outputs[session_id] = output
        self.keyframes.want()

    def remove_output(self, session_id: str) -> None:
        output = self.outputs.pop(session_id, None)
        if output is not None:
            output.closed = True

    def close_sinks(self) -> None:
        sinks, self.sinks = self.sinks, []
        for sink in sinks:
            try:
                sink.close()
            except Exception:
                log.exception("media sink failed to close")

    def close(self) -> None:
        self.keyframes.cancel()
        for session_id in list(self.outputs):
            self.remove_output(session_id)
        self.close_sinks()
