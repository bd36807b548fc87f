"""A viewer's peer: WHEP offer in, answer out; once connected, the relay writes its packets directly."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.codecs import is_rtx
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)

from liveshow.media.peers import ParkedTrack, PeerIce, capabilities, make_peer, raw_transport
from liveshow.media.relay import OutTrack, ViewerOutput

log = logging.getLogger(__name__)

StateCallback = Callable[["Viewer", str], Awaitable[None]]
# (the viewer's output, kind, the sequence numbers it reports lost): the show relay's resend
NackCallback = Callable[[ViewerOutput, str, list[int]], None]
# (the viewer's output, the share of its video lost since its last report, 0..1): its layer policy
ReportCallback = Callable[[ViewerOutput, float], None]
# (the viewer's output, its receiver's estimate of its link in bits/s: REMB): its layer policy
EstimateCallback = Callable[[ViewerOutput, int], None]
SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


class CodecMismatch(Exception):
    """The viewer cannot receive the codec the publisher sends."""


class Viewer:
    def __init__(
        self,
        session_id: str,
        ice: PeerIce,
        on_state: StateCallback,
        on_keyframe: Callable[[], None],
        on_nack: NackCallback | None = None,
        on_report: ReportCallback | None = None,
        on_estimate: EstimateCallback | None = None,
    ) -> None:
        self.session_id = session_id
        self.pc: RTCPeerConnection = make_peer(ice)
        self.on_state = on_state
        self.on_keyframe = on_keyframe
        self.on_nack = on_nack
        self.on_report = on_report
        self.on_estimate = on_estimate
        self.output: ViewerOutput | None = None
        self.codecs: dict[str, str] = {}
        # An edge's pull takes every layer: the edge adapts each of its own viewers, and a pull held
        # at a lower layer would hold all of them there.
        self.every_layer = False
        self._tracks: list[ParkedTrack] = []

    async def accept(
        self, offer: str, kinds: list[str], codecs: dict[str, str], h264_params: dict[str, object]
    ) -> str:
        """Answer, sending each offered kind in exactly the codec the show's publisher sends."""
        for kind in kinds:
            codec = codecs.get(kind)
            if codec is None:
                continue
            track = ParkedTrack(kind)
            self._tracks.append(track)
            transceiver = self.pc.addTransceiver(track, direction="sendonly")
            transceiver.setCodecPreferences(
                capabilities(kind, (codec,), h264_params if codec == "H264" else None)
            )
            # A viewer's PLI/FIR becomes a (shared, rate-limited) keyframe request to the publisher.
            transceiver.sender._send_keyframe = self.on_keyframe  # type: ignore[method-assign]
            # aiortc answers a NACK from its own send history, which is empty (the relay writes the
            # packets): the relay answers it from the show's cache instead. Receiver reports on video
            # go to the relay too (the viewer's layer policy), and on to aiortc (RTT, stats).
            self._route_rtcp(transceiver.sender, kind)

        @self.pc.on("connectionstatechange")
        async def changed() -> None:
            await self.on_state(self, self.pc.connectionState)

        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        except Exception as exc:  # aiortc's OperationError: no codec in common
            raise CodecMismatch(str(exc)) from exc
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind is not None and transceiver._codecs:
                self.codecs[transceiver.kind] = transceiver._codecs[0].name
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        return self.pc.localDescription.sdp

    def _route_rtcp(self, sender: Any, kind: str) -> None:
        handle_rtcp = sender._handle_rtcp_packet

        async def handle(packet: Any) -> None:
            if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
                if self.output is not None and self.on_nack is not None and packet.lost:
                    self.on_nack(self.output, kind, packet.lost)
                return
            if (
                kind == "video"
                and isinstance(packet, RtcpRrPacket | RtcpSrPacket)
                and self.output is not None
                and self.on_report is not None
            ):
                for report in packet.reports:
                    if report.ssrc == sender._ssrc:
                        self.on_report(self.output, report.fraction_lost / 256)
            if (
                kind == "video"
                and isinstance(packet, RtcpPsfbPacket)
                and packet.fmt == RTCP_PSFB_APP
                and self.output is not None
                and self.on_estimate is not None
            ):
                try:
                    bitrate, ssrcs = unpack_remb_fci(packet.fci)
                except ValueError:
                    return  # another application's feedback, or malformed: nothing for aiortc either
                if sender._ssrc in ssrcs:
                    self.on_estimate(self.output, bitrate)
                return
            await handle_rtcp(packet)

        sender._handle_rtcp_packet = handle

    def bind(self) -> ViewerOutput | None:
        """Build the direct send path once ICE and DTLS are up."""
        raw = raw_transport(self.pc)
        if raw is None:
            return None
        srtp, udp, addr = raw
        tracks: dict[str, OutTrack] = {}
        for transceiver in self.pc.getTransceivers():
            if not transceiver._codecs or transceiver.kind not in ("audio", "video"):
                continue
            codec = transceiver._codecs[0]
            # The RTX payload type paired with the codec sent (apt), if the viewer accepted RTX.
            pt = codec.payloadType
            paired = [c for c in transceiver._codecs if is_rtx(c) and c.parameters.get("apt") == pt]
            rtx = paired[0] if paired else None
            # abs-send-time on video, where the viewer offered it: its receiver's link estimate (REMB).
            send_time = [e.id for e in transceiver._headerExtensions if e.uri == SEND_TIME_URI]
            tracks[transceiver.kind] = OutTrack(
                transceiver.sender,
                pt=codec.payloadType or 0,
                codec=codec.name,
                seq=random.randint(0, 32767),
                ts_offset=random.randint(0, 0xFFFFFFFF),
                rtx_pt=rtx.payloadType if rtx is not None else None,
                rtx_seq=random.randint(0, 32767),
                send_time_id=send_time[0]
                if send_time and 1 <= send_time[0] <= 14 and transceiver.kind == "video"
                else 0,
            )
        self.output = ViewerOutput(tracks, srtp, udp, addr)
        return self.output

    async def close(self) -> None:
        if self.output is not None:
            self.output.closed = True
        for track in self._tracks:
            track.stop()
        try:
            await asyncio.wait_for(self.pc.close(), timeout=5)
        except Exception:
            log.warning("viewer %s did not close cleanly", self.session_id, exc_info=True)
