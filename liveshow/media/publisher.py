"""The publisher's peer: WHIP offer in, answer out, its RTP packets and encoded frames onto the show clock.

Packets go to the relay as they arrive (forwarded to viewers); whole frames go to the show's sinks
(the recorder)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.rtp import RtpPacket

from liveshow.media.clock import ShowClock, StreamTimeline
from liveshow.media.forward import InboundStream
from liveshow.media.frames import EncodedFrame, clock_rate, is_keyframe
from liveshow.media.peers import (
    FORWARDED,
    PeerIce,
    capabilities,
    in_offer_order,
    make_peer,
    request_pli,
    tap_receiver,
)

log = logging.getLogger(__name__)

StateCallback = Callable[["Publisher", str], Awaitable[None]]
# (kind, codec, source key, packet number from the source's first, payload, pts, marker): ShowRelay.forward
PacketCallback = Callable[[str, str, Hashable, int, bytes, int, bool], None]


class Publisher:
    """One publish session (a WHIP resource). ``on_packet`` gets every RTP packet as it arrives,
    ``on_frame`` every complete encoded frame."""

    def __init__(
        self,
        session_id: str,
        clock: ShowClock,
        ice: PeerIce,
        on_frame: Callable[[EncodedFrame], None],
        on_state: StateCallback,
        on_packet: PacketCallback,
    ) -> None:
        self.session_id = session_id
        self.pc: RTCPeerConnection = make_peer(ice)
        self.clock = clock
        self.on_frame = on_frame
        self.on_state = on_state
        self.on_packet = on_packet
        self.packets = 0
        self._inbound: dict[tuple[str, int], InboundStream] = {}
        self.codecs: dict[str, str] = {}
        self.frames = 0
        self._video: RTCRtpTransceiver | None = None
        self._timelines: dict[str, StreamTimeline] = {}
        self._closed = False

    async def accept(self, offer: str, kinds: list[str]) -> str:
        """Answer the offer, receiving one stream of each offered kind in a codec we forward."""
        for kind in kinds:
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            transceiver.setCodecPreferences(in_offer_order(offer, kind, capabilities(kind, FORWARDED[kind])))
            tap_receiver(transceiver, self._frame_handler(kind), self._packet_handler(kind))
            if kind == "video":
                self._video = transceiver

        @self.pc.on("connectionstatechange")
        async def changed() -> None:
            await self.on_state(self, self.pc.connectionState)

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind is not None and transceiver._codecs:
                self.codecs[transceiver.kind] = transceiver._codecs[0].name
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        return self.pc.localDescription.sdp

    def _frame_handler(self, kind: str) -> Callable[[str, bytes, int], None]:
        timeline = StreamTimeline(self.clock, clock_rate(kind))
        self._timelines[kind] = timeline

        def on_frame(codec: str, data: bytes, stream_ts: int) -> None:
            if self._closed or not data:
                return
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

    def _packet_handler(self, kind: str) -> Callable[[str, RtpPacket], None]:
        rate = clock_rate(kind)
        inbound = self._inbound

        def on_packet(codec: str, packet: RtpPacket) -> None:
            if self._closed:
                return
            key = (kind, packet.ssrc)
            stream = inbound.get(key)
            if stream is None:
                # A new SSRC (this session's first, or the browser restarted its stream): its
                # timestamps start from the show clock now, its packets after every earlier one.
                stream = inbound[key] = InboundStream(
                    packet.sequence_number, packet.timestamp, self.clock.now(rate)
                )
            n, pts = stream.map(packet.sequence_number, packet.timestamp)
            self.packets += 1
            self.on_packet(
                kind, codec, (self.session_id, packet.ssrc), n, packet.payload, pts, bool(packet.marker)
            )

        return on_packet

    def request_keyframe(self) -> None:
        if self._video is not None and not self._closed:
            request_pli(self._video)

    async def close(self) -> None:
        self._closed = True
        try:
            await asyncio.wait_for(self.pc.close(), timeout=5)
        except Exception:
            log.warning("publisher %s did not close cleanly", self.session_id, exc_info=True)
