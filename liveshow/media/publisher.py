"""The publisher's peer: WHIP offer in, answer out, its encoded frames onto the show clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription

from liveshow.media.clock import ShowClock, StreamTimeline
from liveshow.media.frames import EncodedFrame, clock_rate, is_keyframe
from liveshow.media.peers import (
    FORWARDED,
    PeerIce,
    capabilities,
    enlarge_receive_buffers,
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
    """One publish session (a WHIP resource). ``on_frame`` gets every complete encoded frame."""

    def __init__(
        self,
        session_id: str,
        clock: ShowClock,
        ice: PeerIce,
        on_frame: Callable[[EncodedFrame], None],
        on_state: StateCallback,
    ) -> None:
        self.session_id = session_id
        self.pc: RTCPeerConnection = make_peer(ice)
        self.clock = clock
        self.on_frame = on_frame
        self.on_state = on_state
        self.codecs: dict[str, str] = {}
        self.frames = 0
        self._video: RTCRtpTransceiver | None = None
        self._timelines: dict[str, StreamTimeline] = {}
        self._closed = False

    async def accept(self, offer: str, kinds: list[str]) -> str:
        """Answer the offer, receiving one stream of each offered kind in a codec we forward."""
        for kind in kinds:
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            transceiver.setCodecPreferences(capabilities(kind, FORWARDED[kind]))
            tap_receiver(transceiver, self._frame_handler(kind))
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

    def request_keyframe(self) -> None:
        if self._video is not None and not self._closed:
            request_pli(self._video)

    async def close(self) -> None:
        self._closed = True
        try:
            await asyncio.wait_for(self.pc.close(), timeout=5)
        except Exception:
            log.warning("publisher %s did not close cleanly", self.session_id, exc_info=True)
