"""A WHEP viewer on a lossy link, made at the receiver: its transport drops a seeded share of the
incoming video RTP before SRTP and its RTP receivers see it, so its NACKs are real and the relay's
retransmissions are what make up for the loss. Used by tests/test_rtx_loss.py and bench/network.py
(through bench/netviewer.py).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.rtp import is_rtcp

from liveshow.signaling.client import Watcher

NACK_RETRY = 0.1  # seconds a packet stays missing before the viewer asks for it again


class DropPattern:
    """Exactly one packet in every block of 1/loss packets, at a position a seeded RNG picks per block:
    the same share every run, never bunched by chance into a test that saw no loss. A loss of 0 drops
    nothing (a reference viewer that still asks again for what its link lost, as browsers do)."""

    def __init__(self, loss: float, seed: int) -> None:
        if not 0 <= loss < 1:
            raise ValueError(f"a share of packets to drop, 0 to 1, not {loss}")
        self.block = round(1 / loss) if loss else 0
        self.rng = random.Random(seed)
        self.count = 0
        self.pick = 0

    def drop(self) -> bool:
        if not self.block:
            return False
        at = self.count % self.block
        if at == 0:
            self.pick = self.rng.randrange(self.block)
        self.count += 1
        return at == self.pick


class LossyWatcher(Watcher):
    """A WHEP viewer whose transport drops a share of the incoming video RTP (first sends and resends
    alike, ``DropPattern``) as it arrives, before SRTP and its RTP receivers see it; audio (which is
    not NACKed), RTCP, STUN and DTLS pass untouched."""

    def __init__(self, loss: float, seed: int, codec: str, rtx: bool = True) -> None:
        super().__init__()
        self.codec = codec
        self.pattern = DropPattern(loss, seed)
        self.rtx = rtx
        self.video_pt = -1
        self.dropped_video = 0  # first sends of video packets dropped (not RTX)
        self.dropped = 0
        self.nacked_again = 0
        self.rtx_received = 0  # RTX packets (resends) that got through; 0 when RTX is not negotiated

    async def watch(self, url: str) -> None:
        if not self.rtx:
            # Offer the codec without RTX: the relay must resend the original packet itself.
            add = self.pc.addTransceiver

            def add_vp8_only(kind: Any, **options: Any) -> Any:
                transceiver = add(kind, **options)
                if kind == "video":
                    caps = RTCRtpReceiver.getCapabilities("video").codecs  # type: ignore[union-attr]
                    transceiver.setCodecPreferences([c for c in caps if c.mimeType == f"video/{self.codec}"])
                return transceiver

            self.pc.addTransceiver = add_vp8_only  # type: ignore[method-assign,assignment]
        await super().watch(url)
        video = next(t for t in self.pc.getTransceivers() if t.kind == "video" and t._codecs)
        self.video_pt = video._codecs[0].payloadType or 0
        video_pts = {c.payloadType for c in video._codecs}  # the codec's and its RTX's
        assert any(c.mimeType == "video/rtx" for c in video._codecs) == self.rtx
        # Dropped on the wire, before SRTP: a resent packet is new to the viewer's SRTP replay window.
        ice = video.receiver.transport.transport
        receive = ice._recv

        async def lossy() -> bytes:
            while True:
                data = await receive()
                is_video = 127 < data[0] < 192 and not is_rtcp(data) and data[1] & 0x7F in video_pts
                if not is_video or not self.pattern.drop():
                    if is_video and data[1] & 0x7F != self.video_pt:
                        self.rtx_received += 1
                    return data
                self.dropped += 1
                if data[1] & 0x7F == self.video_pt:
                    self.dropped_video += 1

        ice._recv = lossy
        self._tasks.append(asyncio.ensure_future(self._nack_again(video.receiver)))

    async def _nack_again(self, receiver: Any) -> None:
        """Ask again for packets still missing after a retry interval, as browsers do (libwebrtc's
        NackRequester retries every round trip). aiortc alone NACKs a hole only when a new hole appears,
        so a lost retransmission would stall its jitter buffer until the next loss, which is a
        property of this test client, not of the relay."""
        missing: set[int] = receiver._RTCRtpReceiver__nack_generator.missing
        streams: dict[int, Any] = receiver._RTCRtpReceiver__remote_streams
        rtx_ssrcs: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc
        before: set[int] = set()
        while True:
            await asyncio.sleep(NACK_RETRY)
            still = before & missing
            media = [ssrc for ssrc in streams if ssrc not in rtx_ssrcs]
            if still and media:
                self.nacked_again += len(still)
                await receiver._send_rtcp_nack(media[0], sorted(still))
            before = set(missing)
