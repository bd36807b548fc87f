"""The relay: one show's encoded frames fanned out to every viewer without decoding or encoding.

A frame is packetized once (``Packetizer``) and the payloads are shared; per viewer only the RTP header
(SSRC, sequence number, timestamp, payload type) is written, then SRTP protect and a UDP ``sendto`` on
the viewer's nominated ICE pair, synchronously: no per-packet coroutine chain, no per-viewer task.

A slow viewer never slows the others: the send is non-blocking and each viewer's socket buffer is
bounded (``MAX_BUFFERED``); past it the viewer's video is dropped until the next keyframe, which is
requested upstream. Keyframe requests (a viewer joins, reports PLI/FIR, or was dropped) are shared by
the whole show and rate-limited (``KeyframeRequests``).

Lost packets are resent: the show keeps its recent video packets once (``rtx.PacketCache``, the same
shared payloads), each viewer's track remembers which show packets its sequence numbers carried
(``rtx.SentRuns``, touched once per frame), and a viewer's NACK is answered from the cache, rewritten for
that viewer, as RTX where negotiated (``ShowRelay.resend``). Only a packet the cache no longer holds
costs a keyframe request.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

from aiortc import clock

from liveshow.media.frames import EncodedFrame, MediaSink
from liveshow.media.packets import Packetizer
from liveshow.media.rtx import PacketCache, RtxCounts, SentRuns, plain_packet, resend_allowance, rtx_packet

log = logging.getLogger(__name__)

RTP_HEADER = struct.Struct("!BBHII")
# Bytes a viewer's UDP socket may hold unsent before its video drops to the next keyframe.
MAX_BUFFERED = 256 * 1024
KEYFRAME_INTERVAL = 0.5  # seconds between two keyframe requests to the publisher


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
        "octets",
        "packets",
        "pt",
        "resent",
        "rtx_pt",
        "rtx_seq",
        "rtx_ssrc",
        "runs",
        "sender",
        "seq",
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
    ) -> None:
        self.sender = sender
        self.ssrc: int = sender._ssrc
        self.pt = pt
        self.codec = codec
        self.seq = seq
        self.ts_offset = ts_offset
        self.waiting = True  # video: nothing is sent before a keyframe
        self.packets = 0
        self.octets = 0
        self.runs = SentRuns()
        # RFC 4588: the RTX stream has its own payload type, SSRC (the one the answer announced in its
        # FID group) and sequence numbers; None: resend the original packet itself.
        self.rtx_pt = rtx_pt
        self.rtx_ssrc: int = sender._rtx_ssrc
        self.rtx_seq = rtx_seq
        self.resent = 0


class ViewerOutput:
    """Sends shared payloads to one viewer over its SRTP session and nominated ICE pair."""

    def __init__(self, tracks: dict[str, OutTrack], srtp: Any, udp: Any, addr: Any) -> None:
        self.tracks = tracks
        self._protect = srtp.protect
        self._udp = udp
        self._addr = addr
        self.dropped_frames = 0
        self.closed = False

    def send(
        self,
        kind: str,
        codec: str,
        payloads: list[bytes],
        pts: int,
        keyframe: bool,
        ntp: int,
        first_index: int = -1,
    ) -> bool:
        """Send one frame; returns False when the viewer needs a keyframe (it was dropped).
        ``first_index``: the show index of the frame's first packet in the cache (-1: not cached)."""
        track = self.tracks.get(kind)
        if track is None or self.closed:
            return True
        if track.codec != codec:
            return True  # the publisher changed codec; the service closes this viewer
        video = kind == "video"
        if video and track.waiting:
            if not keyframe:
                return True
            track.waiting = False
        udp = self._udp
        if udp.is_closing():
            self.closed = True
            return True
        if udp.get_write_buffer_size() > MAX_BUFFERED:
            self.dropped_frames += 1
            if video:
                track.waiting = True
                return False
            return True
        if first_index >= 0:
            runs = track.runs
            if first_index != runs.next_index:  # joined, or skipped frames: a new run starts here
                runs.start(track.packets, first_index)
            runs.next_index = first_index + len(payloads)
        ts = (track.ts_offset + pts) & 0xFFFFFFFF
        seq = track.seq
        ssrc = track.ssrc
        pt = track.pt
        last = len(payloads) - 1
        protect = self._protect
        sendto = udp.sendto
        addr = self._addr
        octets = 0
        for i, payload in enumerate(payloads):
            marker = 0x80 if (video and i == last) else 0
            sendto(protect(RTP_HEADER.pack(0x80, marker | pt, seq, ts, ssrc) + payload), addr)
            seq = (seq + 1) & 0xFFFF
            octets += len(payload)
        track.seq = seq
        track.packets += len(payloads)
        track.octets += octets
        # Keep the sender's RTCP sender reports truthful (A/V sync and RTT in the viewer).
        sender = track.sender
        sender._RTCRtpSender__ntp_timestamp = ntp
        sender._RTCRtpSender__rtp_timestamp = ts
        sender._RTCRtpSender__packet_count = track.packets
        sender._RTCRtpSender__octet_count = track.octets
        return True

    def resend(self, kind: str, seqs: list[int], cache: PacketCache, now: float) -> tuple[int, int, int]:
        """Answer a NACK from the show's cache: returns (packets resent, packets no longer cached,
        packets refused past this viewer's allowance)."""
        track = self.tracks.get(kind)
        if track is None or self.closed:
            return 0, 0, 0
        udp = self._udp
        if udp.is_closing():
            self.closed = True
            return 0, 0, 0
        allowed = resend_allowance(track.packets, track.resent)
        refused = max(0, len(seqs) - allowed)
        if refused:
            seqs = seqs[:allowed]
        resent = missing = 0
        runs = track.runs
        for seq in seqs:
            index = runs.index_of(seq & 0xFFFF, track.seq, track.packets, cache.size)
            hit = cache.get(index, now)
            if hit is None:
                missing += 1
                continue
            if udp.get_write_buffer_size() > MAX_BUFFERED:
                break  # congested: send() drops it to the next keyframe; more packets help no one
            payload, pts, marker = hit
            ts = (track.ts_offset + pts) & 0xFFFFFFFF
            if track.rtx_pt is not None:
                packet = rtx_packet(payload, marker, track.rtx_pt, track.rtx_seq, ts, track.rtx_ssrc, seq)
                track.rtx_seq = (track.rtx_seq + 1) & 0xFFFF
            else:
                packet = plain_packet(payload, marker, track.pt, seq, ts, track.ssrc)
            udp.sendto(self._protect(packet), self._addr)
            resent += 1
        track.resent += resent
        return resent, missing, refused


class ShowRelay:
    """One show's fan-out point: frames in (publisher or re-air), packets out to viewers, frames to sinks."""

    def __init__(
        self,
        show_id: int,
        request_keyframe: Callable[[], None],
        rtx: RtxCounts | None = None,
        resend: bool = True,
        layers: bool = True,
    ) -> None:
        self.show_id = show_id
        self.outputs: dict[str, ViewerOutput] = {}
        self.sinks: list[MediaSink] = []
        self.keyframes = KeyframeRequests(request_keyframe)
        self._packetizer = Packetizer()
        # Video only: players NACK video (audio is negotiated without NACK, a lost 20 ms is concealed).
        # resend=False (LIVESHOW_RELAY_RTX off): no cache, every NACK costs a keyframe request.
        self.caches: dict[str, PacketCache] = {"video": PacketCache()} if resend else {}
        self.layers = layers
        self.rtx = rtx if rtx is not None else RtxCounts()
        self.frames_in = 0
        self.frames_sent = 0

    def push(self, frame: EncodedFrame) -> None:
        self.frames_in += 1
        for sink in self.sinks:
            try:
                sink.on_frame(frame)
            except Exception:
                log.exception("media sink failed on a frame of show %s", self.show_id)
        if not self.outputs:
            return
        payloads = self._packetizer.payloads(frame)
        ntp = clock.current_ntp_time()
        cache = self.caches.get(frame.kind)
        first = -1
        if cache is not None:
            first = cache.add_frame(payloads, frame.pts, frame.kind == "video", time.monotonic())
        need_keyframe = False
        for output in self.outputs.values():
            try:
                if not output.send(frame.kind, frame.codec, payloads, frame.pts, frame.keyframe, ntp, first):
                    need_keyframe = True
            except Exception:
                # e.g. SRTP protect after the session closed: this viewer is gone, the others go on.
                output.closed = True
                log.debug("viewer send failed", exc_info=True)
        self.frames_sent += len(self.outputs)
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
            resent, missing, refused = output.resend(kind, seqs, cache, time.monotonic())
        except Exception:
            output.closed = True  # as in push: SRTP protect after the session closed
            log.debug("viewer resend failed", exc_info=True)
            return
        self.rtx.resent += resent
        self.rtx.missing += missing
        self.rtx.refused += refused
        if missing:
            self.keyframes.want()

    def add_output(self, session_id: str, output: ViewerOutput) -> None:
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
