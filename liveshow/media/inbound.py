"""What a receiving peer hands on: a publisher's peer, or an edge's pull from the process feeding it.

Both receive through aiortc (which NACKs lost packets, unwraps RTX and asks for keyframes upstream) and
hand on the same two things: every RTP packet as it arrives, on the show clock and numbered from its
source's first (``ShowRelay.forward``: the viewers get it at once), and every complete frame
(``ShowRelay.to_sinks``: the recorder and the LL-HLS rendition take frames).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from aiortc.rtp import RtpPacket

from liveshow.media.clock import ShowClock, StreamTimeline
from liveshow.media.forward import InboundStream
from liveshow.media.frames import EncodedFrame, clock_rate, is_keyframe

# (kind, codec, source key, packet number from the source's first, payload, pts, marker): ShowRelay.forward
PacketCallback = Callable[[str, str, Hashable, int, bytes, int, bool], None]
FrameCallback = Callable[[EncodedFrame], None]


class InboundTaps:
    """The frame and packet handlers of one receiving session (tap_receiver takes them per kind)."""

    def __init__(
        self, session_id: str, clock: ShowClock, on_frame: FrameCallback, on_packet: PacketCallback
    ) -> None:
        self.session_id = session_id
        self.clock = clock
        self.on_frame = on_frame
        self.on_packet = on_packet
        self.frames = 0
        self.packets = 0
        self.last_video_at: float | None = None  # monotonic time of the last video packet
        self.closed = False
        self._inbound: dict[tuple[str, int], InboundStream] = {}

    def frame_handler(self, kind: str) -> Callable[[str, bytes, int], None]:
        timeline = StreamTimeline(self.clock, clock_rate(kind))

        def on_frame(codec: str, data: bytes, stream_ts: int) -> None:
            if self.closed or not data:
                return
            if kind == "video":
                self.frames += 1
            self.on_frame(
                EncodedFrame(
                    kind=kind,
                    codec=codec,
                    data=data,
                    pts=timeline.pts(stream_ts),
                    keyframe=is_keyframe(codec, data),
                )
            )

        return on_frame

    def packet_handler(self, kind: str) -> Callable[[str, RtpPacket], None]:
        rate = clock_rate(kind)
        inbound = self._inbound
        video = kind == "video"

        def on_packet(codec: str, packet: RtpPacket) -> None:
            if self.closed:
                return
            key = (kind, packet.ssrc)
            stream = inbound.get(key)
            if stream is None:
                # A new SSRC (this session's first, or the sender restarted its stream): its
                # timestamps start from the show clock now, its packets after every earlier one.
                stream = inbound[key] = InboundStream(
                    packet.sequence_number, packet.timestamp, self.clock.now(rate)
                )
            n, pts = stream.map(packet.sequence_number, packet.timestamp)
            self.packets += 1
            if video:
                self.last_video_at = time.monotonic()
            self.on_packet(
                kind, codec, (self.session_id, packet.ssrc), n, packet.payload, pts, bool(packet.marker)
            )

        return on_packet
