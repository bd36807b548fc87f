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

NACK_RETRY = 0.1  # the least seconds a packet stays missing before the viewer asks for it again
NACK_TICK = 0.02  # how often the viewer looks (libwebrtc's NackRequester: every 20 ms)
KEYFRAME_RETRY = 1.0  # seconds between two keyframe requests for packets given up on
RTT_GAIN = 0.125  # weight of a new round-trip sample (RFC 6298's alpha)
MAX_NACKS = 10  # times a viewer asks for one packet before giving up on it (libwebrtc's kMaxNackRetries)


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
        self.keyframes_asked = 0  # PLIs sent (for packets it gave up on; aiortc's jitter buffer's too)
        self.resyncs = 0  # keyframes decoding went on from, past packets that never came
        self.given_up = 0  # packets asked for the last (MAX_NACKS-th) time
        self.rtt = NACK_RETRY  # seconds from a NACK to its repair, smoothed
        self._missing: set[int] = set()

    @property
    def missing_now(self) -> int:
        """Video packets this viewer is still waiting for (and asking again for)."""
        return len(self._missing)

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
        receiver: Any = video.receiver
        self._missing = receiver._RTCRtpReceiver__nack_generator.missing
        send_pli = receiver._send_rtcp_pli

        async def counted_pli(media_ssrc: int) -> None:
            self.keyframes_asked += 1
            await send_pli(media_ssrc)

        receiver._send_rtcp_pli = counted_pli
        if video._codecs[0].mimeType == "video/VP8":
            self._resync_at_keyframes(receiver)
        self._tasks.append(asyncio.ensure_future(self._nack_again(video.receiver)))

    def _resync_at_keyframes(self, receiver: Any) -> None:
        """Go on decoding from a keyframe that arrives while older packets are still missing, as
        browsers do (libwebrtc's packet buffer drops the incomplete frames before a complete keyframe,
        and its NackRequester stops asking for packets older than it). aiortc's jitter buffer would
        wait for the hole until 512 packets later (at a narrow link's rate: many seconds), a property
        of this test client, not of the relay, which asks the publisher for that keyframe when it
        cannot resend a packet."""
        buffer = receiver._RTCRtpReceiver__jitter_buffer
        add = buffer.add

        def add_resyncing(packet: Any) -> Any:
            origin = buffer._origin
            if origin is not None and vp8_keyframe_start(packet.payload):
                seq = packet.sequence_number
                older = {m for m in self._missing if 0 < (seq - m) % 65536 < 32768}
                ahead = (seq - origin) % 65536
                slots = buffer._packets
                # A hole before the keyframe, asked for or given up on: the frames around it are lost.
                hole = any(slots[(origin + i) % buffer.capacity] is None for i in range(ahead))
                if (older or hole) and 0 < ahead < buffer.capacity:
                    buffer.remove(ahead)  # the incomplete frames before the keyframe
                    self._missing -= older
                    self.resyncs += 1
            return add(packet)

        buffer.add = add_resyncing

    async def _nack_again(self, receiver: Any) -> None:
        """Ask again for packets still missing a round trip after the last ask, as browsers do
        (libwebrtc's NackRequester resends a NACK once the RTT has passed since the last one, at most
        MAX_NACKS times). The round trip is measured as browsers' RTCP would see it through a queue:
        from a packet's first NACK to its repair, only for packets asked for once (Karn: a repair after
        two asks could answer either); until then, and never under, NACK_RETRY. aiortc alone NACKs a
        hole only when a new hole appears, so a lost retransmission would stall its jitter buffer until
        the next loss, which is a property of this test client, not of the relay; re-asking faster than
        the round trip (a fixed 0.1 s through a 250 ms queue) asks for packets already on their way and
        spends the relay's resend allowance."""
        missing: set[int] = receiver._RTCRtpReceiver__nack_generator.missing
        streams: dict[int, Any] = receiver._RTCRtpReceiver__remote_streams
        rtx_ssrcs: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc
        loop = asyncio.get_running_loop()
        asked: dict[int, tuple[float, int]] = {}  # seq -> (when last asked, times asked)
        send_nack = receiver._send_rtcp_nack

        async def new_holes_only(media_ssrc: int, lost: list[int]) -> None:
            # aiortc NACKs every packet still missing each time a new hole appears (many times a round
            # trip on a lossy link); a browser NACKs a hole once, then again only once it is due.
            now = loop.time()
            new = [seq for seq in lost if seq not in asked]
            for seq in new:
                asked[seq] = (now, 1)
            if new:
                await send_nack(media_ssrc, new)

        receiver._send_rtcp_nack = new_holes_only
        pli_at = -1e9
        while True:
            await asyncio.sleep(NACK_TICK)
            now = loop.time()
            for seq in [s for s in asked if s not in missing]:
                at, times = asked.pop(seq)
                if times == 1:
                    self.rtt += RTT_GAIN * (now - at - self.rtt)
            for seq in missing:
                if seq not in asked:
                    asked[seq] = (now, 1)  # aiortc NACKed it as the hole appeared
            retry = max(NACK_RETRY, self.rtt)
            due = [s for s, (at, times) in asked.items() if times < MAX_NACKS and now - at >= retry]
            media = [ssrc for ssrc in streams if ssrc not in rtx_ssrcs]
            lost = any(times >= MAX_NACKS and now - at >= retry for at, times in asked.values())
            if lost and media and now - pli_at >= KEYFRAME_RETRY:
                # Given up on a packet: its frame never completes; ask for a keyframe to go on from,
                # as a browser does when no frame has been decodable for a while.
                pli_at = now
                await receiver._send_rtcp_pli(media[0])
            if due and media:
                self.nacked_again += len(due)
                for seq in due:
                    times = asked[seq][1] + 1
                    asked[seq] = (now, times)
                    self.given_up += times == MAX_NACKS
                await send_nack(media[0], sorted(due))


def vp8_keyframe_start(payload: bytes) -> bool:
    """Whether an RTP payload is the first packet of a VP8 keyframe (RFC 7741: the payload descriptor
    says start of partition 0, and the VP8 payload header's P bit is 0)."""
    if len(payload) < 2 or payload[0] & 0x17 != 0x10:  # S=1, PID=0
        return False
    at = 1
    if payload[0] & 0x80:  # X: an extension byte follows
        ext = payload[1]
        at = 2
        if ext & 0x80:  # I: a picture id, 7 or 15 bits
            at += 2 if len(payload) > at and payload[at] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            at += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            at += 1
    return len(payload) > at and payload[at] & 0x01 == 0
