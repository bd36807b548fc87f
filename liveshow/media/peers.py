"""aiortc peers for the relay: the publisher's receive side (no decoder) and a viewer's send side
(no encoder), plus the small adapters that make aiortc hand us RTP packets, encoded frames and raw
transports."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import random
import socket
from collections.abc import Callable
from typing import Any

from aioice import stun
from aioice.ice import CONSENT_INTERVAL
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpTransceiver
from aiortc.codecs import CODECS
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.rtp import RtpPacket

from liveshow.media.icenet import IceNetwork, IcePeer
from liveshow.media.udpmux import UdpMux

log = logging.getLogger(__name__)

_pending: set[asyncio.Future[None]] = set()  # keeps in-flight PLI sends referenced until done
FORWARDED = {"video": ("VP8", "H264"), "audio": ("opus",)}
# RFC 7675: consent expires after 30 s without an answer.
CONSENT_GIVE_UP_S = 30.0


@dataclasses.dataclass(frozen=True)
class PeerIce:
    """How the server's own peers do ICE: where they gather, and the STUN server they may ask."""

    network: IceNetwork = dataclasses.field(default_factory=IceNetwork)
    stun_urls: tuple[str, ...] = ()
    # The process's shared UDP port, when the port range is a single port.
    mux: UdpMux | None = None


def make_peer(ice: PeerIce) -> RTCPeerConnection:
    # Always a list, even empty: given None, aiortc asks a public STUN server on the internet, and a
    # self-hosted server must contact nobody it was not told to.
    servers = [RTCIceServer(urls=url) for url in ice.stun_urls[:1]]
    return IcePeer(RTCConfiguration(iceServers=servers), ice.network, ice.mux)


def capabilities(
    kind: str, codec_names: tuple[str, ...], first_params: dict[str, Any] | None = None
) -> list[RTCRtpCodecCapability]:
    """aiortc codec capabilities limited to the codecs we forward (RTX kept for retransmissions)."""
    wanted = {name.lower() for name in codec_names}
    caps: list[RTCRtpCodecCapability] = []
    for codec in CODECS[kind]:
        if codec.name.lower() in wanted:
            cap = RTCRtpCodecCapability(
                mimeType=codec.mimeType,
                clockRate=codec.clockRate,
                channels=codec.channels,
                parameters=codec.parameters,
            )
            if cap not in caps:
                caps.append(cap)
    if first_params is not None:
        caps.sort(key=lambda c: 0 if c.parameters == first_params else 1)
    if kind == "video":
        caps.append(RTCRtpCodecCapability(mimeType="video/rtx", clockRate=90000))
    return caps


def in_offer_order(offer: str, kind: str, caps: list[RTCRtpCodecCapability]) -> list[RTCRtpCodecCapability]:
    """``caps`` sorted as the offer's ``kind`` section lists their codecs (stable; unlisted last).

    The publisher's order decides what a show is sent in: the studio and OBS put H.264 first, and only
    H.264 shows get an HLS rendition (browsers' MSE takes no VP8 in MP4); a VP8-first offer stays VP8.
    """
    rank: dict[str, int] = {}
    in_kind = False
    for line in offer.splitlines():
        if line.startswith("m="):
            in_kind = line.startswith(f"m={kind} ")
        elif in_kind and line.startswith("a=rtpmap:"):
            parts = line.split(None, 1)
            if len(parts) == 2:
                name = parts[1].split("/", 1)[0].lower()
                rank.setdefault(name, len(rank))
    return sorted(caps, key=lambda c: rank.get(c.mimeType.split("/", 1)[-1].lower(), len(rank)))


class FrameTap:
    """Stands in for an RTCRtpReceiver's decoder queue: complete encoded frames come to ``on_frame``.

    aiortc's receiver does the RTP work (RTX, NACK, REMB, jitter buffer, depayload) and then queues each
    frame for its decoder thread; with this tap the thread finds the queue closed and exits at once, so
    nothing is ever decoded.
    """

    def __init__(self, on_frame: Callable[[str, bytes, int], None]) -> None:
        self.on_frame = on_frame

    def get(self, *args: Any, **kwargs: Any) -> None:
        return None

    def put(self, item: Any) -> None:
        if item is None:
            return
        codec, frame = item
        try:
            self.on_frame(codec.name, frame.data, frame.timestamp)
        except Exception:
            log.exception("ingest failed on a frame")


class PacketTap:
    """Stands in for an RTCRtpReceiver's jitter buffer: each RTP packet goes to ``on_packet`` as it
    arrives, after SRTP, RTX unwrapping and the receiver's NACK bookkeeping (so aiortc still asks the
    publisher for what was lost), and then into the real jitter buffer, which still assembles the
    frames ``FrameTap`` hands on (the recorder's input). Only ``add`` and ``capacity`` are used by
    the receiver."""

    def __init__(
        self, buffer: JitterBuffer, codecs: dict[int, Any], on_packet: Callable[[str, RtpPacket], None]
    ) -> None:
        self.buffer = buffer
        self._codecs = codecs  # the receiver's own payload type -> codec map, filled when it starts
        self.on_packet = on_packet

    @property
    def capacity(self) -> int:
        return self.buffer.capacity

    def add(self, packet: RtpPacket) -> tuple[bool, Any]:
        codec = self._codecs.get(packet.payload_type)
        if codec is not None:
            try:
                self.on_packet(codec.name, packet)
            except Exception:
                log.exception("ingest failed on a packet")
        return self.buffer.add(packet)


def tap_receiver(
    transceiver: RTCRtpTransceiver,
    on_frame: Callable[[str, bytes, int], None],
    on_packet: Callable[[str, RtpPacket], None],
) -> None:
    """Packets to ``on_packet`` as they arrive, whole frames to ``on_frame``; nothing decoded."""
    receiver = transceiver.receiver
    receiver._RTCRtpReceiver__decoder_queue = FrameTap(on_frame)  # type: ignore[attr-defined]
    if transceiver.kind == "audio":
        # Each Opus packet is a frame: hand it on at once instead of holding 4 packets (80 ms).
        buffer = JitterBuffer(capacity=16, prefetch=0)
    else:
        buffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    codecs = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
    receiver._RTCRtpReceiver__jitter_buffer = PacketTap(buffer, codecs, on_packet)  # type: ignore[attr-defined]


def request_pli(transceiver: RTCRtpTransceiver) -> None:
    """Ask the publisher for a keyframe on its media SSRC (not the RTX one)."""
    receiver = transceiver.receiver
    streams: dict[int, Any] = getattr(receiver, "_RTCRtpReceiver__remote_streams", {})
    rtx: dict[int, int] = getattr(receiver, "_RTCRtpReceiver__rtx_ssrc", {})
    for ssrc in streams:
        if ssrc not in rtx:
            task = asyncio.ensure_future(receiver._send_rtcp_pli(ssrc))
            _pending.add(task)
            task.add_done_callback(_pending.discard)


class ParkedTrack(MediaStreamTrack):
    """A track that never yields: the sender's own RTP loop waits on it forever, encoding nothing,
    while the relay writes packets for the sender's SSRC directly."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._ended = asyncio.Event()

    async def recv(self) -> Any:
        await self._ended.wait()
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        self._ended.set()


def enlarge_receive_buffers(pc: RTCPeerConnection, size: int) -> int:
    """Ask the kernel for ``size`` bytes of receive buffer on every UDP socket of ``pc``'s ICE
    connections (gathered already); returns how many sockets were set.

    For the publisher: everything the show sends comes in on one socket, read by the event loop
    between everything else it does. While the loop runs late (a surge of viewers joining, the
    machine busy), the kernel queues the publisher's packets; with the default buffer (about a second
    of a 720p stream, each datagram counted at its full kernel size) it drops them and every viewer
    sees the loss. A larger queue turns that loss into a delay the jitter buffers absorb. The kernel
    caps it at net.core.rmem_max."""
    count = 0
    seen: set[int] = set()
    for connection in ice_connections(pc):
        for protocol in connection._protocols:
            transport = getattr(protocol, "transport", None)
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is None or sock.fileno() in seen:
                continue
            seen.add(sock.fileno())
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
            except OSError:
                log.warning("could not enlarge a publisher socket's receive buffer", exc_info=True)
                continue
            count += 1
    return count


def ice_connections(pc: RTCPeerConnection) -> list[Any]:
    """The aioice connections under ``pc``'s transceivers (one when bundled), once it has gathered."""
    found: list[Any] = []
    for transceiver in pc.getTransceivers():
        connection = getattr(transceiver.receiver.transport.transport, "_connection", None)
        if connection is not None and all(connection is not c for c in found):
            found.append(connection)
    return found


async def consent_until_silent(connection: Any, give_up_s: float, interval: float = CONSENT_INTERVAL) -> None:
    """RFC 7675 consent freshness that expires after ``give_up_s`` without any answer, as browsers do.

    aioice gives up after six checks in a row that each waited 0.5 s for their answer. On a loop that
    runs more than 0.5 s late (a surge of joins, a starved machine) every answer is read after its
    timer fired (uvloop runs expired timers before it polls sockets), so the peer's consent "expires"
    while it answers every check: for the publisher, the show stops for everyone. Here a check is
    retransmitted (0.5, 1, 2 s) and only a silence of ``give_up_s`` closes the connection."""
    loop = asyncio.get_running_loop()
    last_answer = loop.time()
    while True:
        await asyncio.sleep(interval * (0.8 + 0.4 * random.random()))
        for pair in list(connection._nominated.values()):
            request = connection.build_request(pair, nominate=False)
            try:
                await pair.protocol.request(
                    request,
                    pair.remote_addr,
                    integrity_key=connection.remote_password.encode("utf8"),
                    retransmissions=2,
                )
                last_answer = loop.time()
            except stun.TransactionError:
                pass
        if loop.time() - last_answer >= give_up_s:
            log.info("consent expired: no answer for %.0f s", loop.time() - last_answer)
            connection._query_consent_task = None
            await connection.close()
            return


def tolerate_late_consent(pc: RTCPeerConnection, give_up_s: float = CONSENT_GIVE_UP_S) -> int:
    """Give ``pc``'s ICE connections ``consent_until_silent`` (before they connect); how many."""
    connections = ice_connections(pc)
    for connection in connections:
        connection.query_consent = functools.partial(consent_until_silent, connection, give_up_s)
    return len(connections)


def raw_transport(pc: RTCPeerConnection) -> tuple[Any, Any, Any] | None:
    """The connected peer's SRTP session, UDP transport and remote address (the nominated ICE pair)."""
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        srtp = getattr(dtls, "_tx_srtp", None)
        connection = getattr(dtls.transport, "_connection", None)
        nominated = getattr(connection, "_nominated", {}) if connection is not None else {}
        pair = nominated.get(1)
        if srtp is None or pair is None or dtls.state != "connected":
            continue
        return srtp, pair.protocol.transport, pair.remote_addr
    return None
