"""Viewers on lossy links keep watching: real aiortc viewers drop a seeded share of the RTP they receive
before their receiver sees it, so their NACKs are real, and the relay resends from the show's cache.

Every viewer watches the same show at the same time as a lossless reference viewer; each must decode at
least 95 % of the frames the reference decodes over the same window. Without retransmission a lost
packet stalls an aiortc viewer's jitter buffer until 512 packets later and then waits for a keyframe.
"""

from __future__ import annotations

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


@pytest.fixture
def stage(tmp_path: Path, sqlite_url: str) -> Iterator[Stage]:
    yield from staged_server(tmp_path, sqlite_url)


class LossyWatcher(Watcher):
    """A WHEP viewer whose transport drops a share of incoming RTP (chosen by a seeded RNG, so the
    pattern is the same each run) as it arrives, before SRTP and its RTP receivers see it; RTCP, STUN
    and DTLS pass untouched."""

    def __init__(self, loss: float, seed: int, rtx: bool = True) -> None:
        super().__init__()
        self.loss = loss
        self.rng = random.Random(seed)
        self.rtx = rtx
        self.video_pt = -1
        self.dropped_video = 0  # original video packets dropped (not retransmissions, not audio)
        self.dropped = 0

    async def watch(self, url: str) -> None:
        if not self.rtx:
            # Offer VP8 without RTX: the relay must resend the original packet itself.
            add = self.pc.addTransceiver

            def add_vp8_only(kind: Any, **options: Any) -> Any:
                transceiver = add(kind, **options)
                if kind == "video":
                    caps = RTCRtpReceiver.getCapabilities("video").codecs  # type: ignore[union-attr]
                    transceiver.setCodecPreferences([c for c in caps if c.mimeType == "video/VP8"])
                return transceiver

            self.pc.addTransceiver = add_vp8_only  # type: ignore[method-assign,assignment]
        await super().watch(url)
        video = next(t for t in self.pc.getTransceivers() if t.kind == "video" and t._codecs)
        self.video_pt = video._codecs[0].payloadType or 0
        assert any(c.mimeType == "video/rtx" for c in video._codecs) == self.rtx
        # Dropped on the wire, before SRTP: a resent packet is new to the viewer's SRTP replay window.
        ice = video.receiver.transport.transport
        receive = ice._recv

        async def lossy() -> bytes:
            while True:
                data = await receive()
                if not (127 < data[0] < 192) or is_rtcp(data) or self.rng.random() >= self.loss:
                    return data
                self.dropped += 1
                if data[1] & 0x7F == self.video_pt:
                    self.dropped_video += 1

        ice._recv = lossy


async def server_metrics(stage: Stage) -> dict[str, float]:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{stage.server.url}/metrics")).text
    return {m[1]: float(m[2]) for m in re.finditer(r"^(liveshow_rtx_\w+) (\S+)$", text, re.M)}


async def test_lossy_viewers_decode_nearly_every_frame(stage: Stage) -> None:
    # 640x480: a few packets per frame, so a lost packet is usually one of several of its frame.
    pub, _ = await publish(stage.whip, stage.show.stream_key, video=PatternTrack(640, 480), codec="VP8")
    await wait_for(lambda: stage.media.state(stage.show.id or 0) == "live")
    reference = Watcher()
    lossy = {
        "2% rtx": LossyWatcher(0.02, seed=2),
        "5% rtx": LossyWatcher(0.05, seed=5),
        "5% plain": LossyWatcher(0.05, seed=7, rtx=False),
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
        print(f"reference {ref_frames} frames; lossy {decoded}; video packets dropped {dropped}")
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
