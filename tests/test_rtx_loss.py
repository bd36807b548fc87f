"""Viewers on lossy links keep watching: real aiortc viewers drop a seeded share of the RTP they receive
before their receiver sees it, so their NACKs are real, and the relay resends from the show's cache.

Every viewer watches the same show at the same time as a lossless reference viewer; each must decode at
least 95 % of the frames the reference decodes over the same window. Without retransmission a lost
packet stalls an aiortc viewer's jitter buffer until 512 packets later and then waits for a keyframe.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCRtpReceiver
from aiortc.rtp import is_rtcp

from liveshow.signaling.client import PatternTrack, Watcher, publish
from tests.test_whip_media import Stage, staged_server, wait_for

WINDOW_FRAMES = 240  # 8 s of the reference viewer's video at 30 fps
NACK_RETRY = 0.1  # seconds a packet stays missing before the viewer asks for it again


@pytest.fixture
def stage(tmp_path: Path, sqlite_url: str) -> Iterator[Stage]:
    yield from staged_server(tmp_path, sqlite_url)


class DropPattern:
    """Exactly one packet in every block of 1/loss packets, at a position a seeded RNG picks per block:
    the same share every run, never bunched by chance into a test that saw no loss."""

    def __init__(self, loss: float, seed: int) -> None:
        self.block = round(1 / loss)
        self.rng = random.Random(seed)
        self.count = 0
        self.pick = 0

    def drop(self) -> bool:
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


async def server_metrics(stage: Stage) -> dict[str, float]:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{stage.server.url}/metrics")).text
    return {m[1]: float(m[2]) for m in re.finditer(r"^(liveshow_rtx_\w+) (\S+)$", text, re.M)}


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_lossy_viewers_decode_nearly_every_frame(stage: Stage, codec: str) -> None:
    # 640x480: a few packets per frame, so a lost packet is usually one of several of its frame.
    pub, _ = await publish(stage.whip, stage.show.stream_key, video=PatternTrack(640, 480), codec=codec)
    await wait_for(lambda: stage.media.state(stage.show.id or 0) == "live")
    reference = Watcher()
    lossy = {
        "2% rtx": LossyWatcher(0.02, seed=2, codec=codec),
        "5% rtx": LossyWatcher(0.05, seed=5, codec=codec),
        "5% plain": LossyWatcher(0.05, seed=7, codec=codec, rtx=False),
    }
    watchers: list[Any] = [reference, *lossy.values()]
    try:
        for watcher in watchers:
            await watcher.watch(stage.whep)
        await wait_for(lambda: all(w.frames["video"] >= 5 for w in watchers), timeout=30)
        start = {name: w.frames["video"] for name, w in lossy.items()}
        ref_start = reference.frames["video"]
        await wait_for(lambda: reference.frames["video"] - ref_start >= WINDOW_FRAMES, timeout=60)
        ref_frames = reference.frames["video"] - ref_start
        decoded = {name: w.frames["video"] - start[name] for name, w in lossy.items()}
        dropped = {name: w.dropped_video for name, w in lossy.items()}
        again = {name: w.nacked_again for name, w in lossy.items()}
        print(f"reference {ref_frames} frames; lossy {decoded}; video packets dropped {dropped}")
        print(f"NACKed again after {NACK_RETRY} s: {again}")
        for name, frames in decoded.items():
            assert frames >= 0.95 * ref_frames, (name, frames, ref_frames)
        assert all(n >= 3 for n in dropped.values()), dropped  # the loss did happen

        counts = await server_metrics(stage)
        print("server:", counts)
        relay_rtx = stage.media.rtx
        assert counts["liveshow_rtx_packets_total"] == relay_rtx.resent
        assert counts["liveshow_rtx_nacked_packets_total"] == relay_rtx.nacked
        assert counts["liveshow_rtx_missing_packets_total"] == relay_rtx.missing
        assert counts["liveshow_rtx_refused_packets_total"] == relay_rtx.refused == 0  # within allowance
        # Every original video packet a viewer lost was asked for and resent (a resend that is lost
        # again is asked for again, so there may be more); none had left the cache.
        total_dropped = sum(w.dropped_video for w in lossy.values())
        await wait_for(lambda: relay_rtx.resent >= 0.95 * total_dropped)
        assert relay_rtx.nacked >= relay_rtx.resent
    finally:
        for watcher in watchers:
            await watcher.close()
        await pub.close()
