"""The publisher's peer: WHIP offer in, answer out, its RTP packets and encoded frames onto the show clock.

Packets go to the relay as they arrive (forwarded to viewers); whole frames go to the show's sinks
(the recorder)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription

from liveshow.media.clock import ShowClock
from liveshow.media.inbound import FrameCallback, InboundTaps, PacketCallback
from liveshow.media.peers import (
    FORWARDED,
    PeerIce,
    capabilities,
    enlarge_receive_buffers,
    in_offer_order,
    make_peer,
    request_pli,
    tap_receiver,
    tolerate_late_consent,
)

log = logging.getLogger(__name__)

# The publisher's receive queue in the kernel: several seconds of a 720p stream (enlarge_receive_buffers).
PUBLISHER_RECEIVE_BUFFER = 4 * 1024 * 1024

StateCallback = Callable[["Publisher", str], Awaitable[None]]


class Publisher:
    """One publish session (a WHIP resource). ``on_packet`` gets every RTP packet as it arrives,
    ``on_frame`` every complete encoded frame (see inbound.py)."""

    def __init__(
        self,
        session_id: str,
        clock: ShowClock,
        ice: PeerIce,
        on_frame: FrameCallback,
        on_state: StateCallback,
        on_packet: PacketCallback,
    ) -> None:
        self.session_id = session_id
        self.pc: RTCPeerConnection = make_peer(ice)
        self.clock = clock
        self.on_state = on_state
        self.taps = InboundTaps(session_id, clock, on_frame, on_packet)
        self.codecs: dict[str, str] = {}
        self._video: RTCRtpTransceiver | None = None

    async def accept(self, offer: str, kinds: list[str]) -> str:
        """Answer the offer, receiving one stream of each offered kind in a codec we forward."""
        for kind in kinds:
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            transceiver.setCodecPreferences(in_offer_order(offer, kind, capabilities(kind, FORWARDED[kind])))
            tap_receiver(transceiver, self.taps.frame_handler(kind), self.taps.packet_handler(kind))
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
        await self.pc.setLocalDescription(answer)  # gathers: the sockets exist from here
        enlarge_receive_buffers(self.pc, PUBLISHER_RECEIVE_BUFFER)
        tolerate_late_consent(self.pc)  # a late loop must not end the show (peers.consent_until_silent)
        return self.pc.localDescription.sdp

    def request_keyframe(self) -> None:
        if self._video is not None and not self.taps.closed:
            request_pli(self._video)

    async def close(self) -> None:
        self.taps.closed = True
        try:
            await asyncio.wait_for(self.pc.close(), timeout=5)
        except Exception:
            log.warning("publisher %s did not close cleanly", self.session_id, exc_info=True)
