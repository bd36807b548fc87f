"""Viewers on lossy links keep watching: real aiortc viewers drop a seeded share of the RTP they receive
before their receiver sees it, so their NACKs are real, and the relay resends from the show's cache.

Every viewer watches the same show at the same time as a lossless reference viewer; each must decode at
least 95 % of the frames the reference decodes over the same window. Without retransmission a lost
packet stalls an aiortc viewer's jitter buffer until 512 packets later and then waits for a keyframe.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.lossy import NACK_RETRY, LossyWatcher
from liveshow.signaling.client import PatternTrack, Watcher, publish
from tests.test_whip_media import Stage, staged_server, wait_for

WINDOW_FRAMES = 240  # 8 s of the reference viewer's video at 30 fps


@pytest.fixture
def stage(tmp_path: Path, sqlite_url: str) -> Iterator[Stage]:
    yield from staged_server(tmp_path, sqlite_url)


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
