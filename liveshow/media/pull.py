"""An edge's upstream peer: it watches a show on the process that feeds it (server to server WHEP)
and hands every RTP packet on as it arrives, and every complete frame, as a publisher's peer does
(inbound.py). Nothing is decoded.

The offer receives video in a codec we forward and Opus; the feeding process answers in exactly the
codec its show is sent in (as for any viewer), so the edge's own viewers get the same bytes. Lost
packets are NACKed upstream by aiortc's receiver (the feeder answers from its cache); a keyframe
request is a PLI upstream, which the feeder passes on to its own source, up to the publisher.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time

import httpx
from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription

from liveshow.media import edgeauth
from liveshow.media.clock import ShowClock
from liveshow.media.inbound import FrameCallback, InboundTaps, PacketCallback
from liveshow.media.peers import FORWARDED, PeerIce, capabilities, make_peer, request_pli, tap_receiver

log = logging.getLogger(__name__)

EXCHANGE_TIMEOUT = 10.0  # seconds for the feeder to answer the offer
# Receive buffer of the pull's sockets. An edge's event loop is busy for a second or more while its
# viewers join (DTLS handshakes); meanwhile the show piles up in the pull's socket, and a packet lost
# there is lost for every viewer of the edge. 4 MiB holds ~10 s of a 1.5 Mbps show (Linux caps it at
# net.core.rmem_max; aioice asks for 256 KiB, which overflowed in bench/cluster.py's join bursts).
PULL_RECEIVE_BUFFER = 4 * 1024 * 1024


class PullRefused(Exception):
    """The feeder did not answer the offer with 201 (gone, full, not holding the show)."""


class UpstreamPull:
    """One pull session: ``open()`` negotiates (the codecs are known when it returns); once ICE and DTLS
    are up, every packet goes to ``on_packet`` as it arrives and every whole frame to ``on_frame``, as a
    publisher's do (inbound.py); ``close()`` ends the session upstream too."""

    def __init__(
        self,
        url: str,
        show_id: int,
        secret_key: str,
        ice: PeerIce,
        clock: ShowClock,
        on_frame: FrameCallback,
        on_packet: PacketCallback,
    ) -> None:
        self.url = url.rstrip("/")
        self.show_id = show_id
        self.secret_key = secret_key
        # Its own UDP port even when the process shares one (udpmux): the mux tells its sessions apart
        # by the ICE username a client puts in its checks, and here the server is the client.
        self.pc: RTCPeerConnection = make_peer(dataclasses.replace(ice, mux=None))
        self.taps = InboundTaps(f"pull-{show_id}-{id(self)}", clock, on_frame, on_packet)
        self.codecs: dict[str, str] = {}
        self.location = ""
        self.opened_at = time.monotonic()
        self.keyframe_requests = 0
        self._video: RTCRtpTransceiver | None = None

    @property
    def frames(self) -> int:
        """Whole video frames received."""
        return self.taps.frames

    @property
    def last_frame_at(self) -> float | None:
        """Monotonic time of the last video packet (None before the first)."""
        return self.taps.last_video_at

    @property
    def state(self) -> str:
        return str(self.pc.connectionState)

    async def open(self) -> dict[str, str]:
        for kind in ("video", "audio"):
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            transceiver.setCodecPreferences(capabilities(kind, FORWARDED[kind]))
            tap_receiver(transceiver, self.taps.frame_handler(kind), self.taps.packet_handler(kind))
            if kind == "video":
                self._video = transceiver
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self._widen_receive_buffers()
        endpoint = f"{self.url}/whep/{self.show_id}"
        headers = {
            "Content-Type": "application/sdp",
            edgeauth.HEADER: edgeauth.pull_token(self.secret_key, self.show_id),
        }
        # No redirects: a feeder that does not hold the show says so, and the edge picks again.
        async with httpx.AsyncClient(timeout=EXCHANGE_TIMEOUT, follow_redirects=False) as http:
            try:
                resp = await http.post(endpoint, content=self.pc.localDescription.sdp, headers=headers)
            except httpx.HTTPError as exc:
                raise PullRefused(f"{endpoint}: {exc!r}") from exc
        if resp.status_code != 201:
            raise PullRefused(f"{endpoint}: {resp.status_code} {resp.text[:200]}")
        self.location = str(resp.url.join(resp.headers.get("location", "")))
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=resp.text, type="answer"))
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind is not None and transceiver._codecs:
                self.codecs[transceiver.kind] = transceiver._codecs[0].name
        self.opened_at = time.monotonic()
        return dict(self.codecs)

    def _widen_receive_buffers(self) -> None:
        """Every UDP socket the pull gathered (after setLocalDescription) gets PULL_RECEIVE_BUFFER."""
        for transceiver in self.pc.getTransceivers():
            connection = getattr(transceiver.receiver.transport.transport, "_connection", None)
            for protocol in getattr(connection, "_protocols", []):
                sock = protocol.transport.get_extra_info("socket") if protocol.transport else None
                if sock is None:
                    continue
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PULL_RECEIVE_BUFFER)
                except OSError:
                    log.debug("could not widen an edge pull's receive buffer", exc_info=True)

    def request_keyframe(self) -> None:
        """A PLI to the feeder (the relay rate-limits how often this is called)."""
        if self._video is not None and not self.taps.closed:
            self.keyframe_requests += 1
            request_pli(self._video)

    async def close(self) -> None:
        if self.taps.closed:
            return
        self.taps.closed = True
        if self.location:
            # Tell the feeder at once (its viewer count, its caps); a dead feeder costs a short wait.
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    await http.delete(self.location)
            except httpx.HTTPError:
                pass
        try:
            await asyncio.wait_for(self.pc.close(), timeout=5)
        except Exception:
            log.warning("edge pull from %s did not close cleanly", self.url, exc_info=True)
