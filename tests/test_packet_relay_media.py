"""Packet forwarding with real aiortc peers through WHIP and WHEP: viewers receive every packet, in order,
under sequence numbers of their own that never jump, across a mid-stream join and a publisher that
leaves and comes back as a new peer (new SSRC, sequence numbers and timestamps); and they decode every
frame they were sent."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from liveshow.signaling.client import Watcher, publish
from tests.test_whip_media import Stage, staged_server, wait_for


@pytest.fixture
def stage(tmp_path: Path, sqlite_url: str) -> Iterator[Stage]:
    yield from staged_server(tmp_path, sqlite_url)


class RtpWatcher(Watcher):
    """A WHEP viewer that also notes each video packet's sequence number and timestamp as its
    receiver gets it (after SRTP; RTX would arrive unwrapped, none is expected on loopback)."""

    def __init__(self) -> None:
        super().__init__()
        self.video: list[tuple[int, int]] = []

    async def watch(self, url: str) -> None:
        await super().watch(url)
        video = next(t for t in self.pc.getTransceivers() if t.kind == "video" and t._codecs)
        media_pt = video._codecs[0].payloadType
        receiver = video.receiver
        handle = receiver._handle_rtp_packet

        async def note(packet: Any, arrival_time_ms: int) -> None:
            if packet.payload_type == media_pt:
                self.video.append((packet.sequence_number, packet.timestamp))
            await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = note  # type: ignore[method-assign]


def assert_continuous(watcher: RtpWatcher) -> None:
    seqs = [seq for seq, _ in watcher.video]
    assert len(seqs) >= 60
    jumps = [(a, b) for a, b in itertools.pairwise(seqs) if (b - a) & 0xFFFF != 1]
    assert jumps == [], f"sequence numbers not continuous: {jumps[:5]}"
    stamps = [ts for _, ts in watcher.video]
    backwards = [(a, b) for a, b in itertools.pairwise(stamps) if (b - a) & 0xFFFFFFFF >= 1 << 31]
    assert backwards == [], f"timestamps went back: {backwards[:5]}"


async def test_viewers_get_every_packet_in_order_across_a_join_and_a_republish(stage: Stage) -> None:
    show_id = stage.show.id or 0
    pub, location = await publish(stage.whip, stage.show.stream_key, codec="VP8")
    await wait_for(lambda: stage.media.state(show_id) == "live")
    first = RtpWatcher()
    await first.watch(stage.whep)
    await wait_for(lambda: first.frames["video"] >= 30)
    late = RtpWatcher()
    await late.watch(stage.whep)  # joins mid-stream: starts at the keyframe its join asked for
    await wait_for(lambda: late.frames["video"] >= 30)

    # The publisher leaves and comes back as a new peer.
    async with httpx.AsyncClient() as http:
        assert (await http.delete(location)).status_code == 200
    await pub.close()
    await wait_for(lambda: stage.media.state(show_id) == "reconnecting")
    before = {w: w.frames["video"] for w in (first, late)}
    pub, location = await publish(stage.whip, stage.show.stream_key, codec="VP8")
    await wait_for(lambda: all(w.frames["video"] >= before[w] + 60 for w in (first, late)), timeout=30)

    for watcher in (first, late):
        assert_continuous(watcher)
        # Every frame sent was decoded: aiortc releases a frame when the next one's first packet
        # comes, so the last frame received may still wait.
        sent_frames = len({ts for _, ts in watcher.video})
        await wait_for(lambda w=watcher, n=sent_frames: w.frames["video"] >= n - 1)  # type: ignore[misc]
    relay = stage.media.shows[show_id].relay
    assert relay.rtx.nacked == 0 and relay.rtx.missing == 0
    assert relay.packets_in > 0
    for watcher in (first, late):
        await watcher.close()
    async with httpx.AsyncClient() as http:
        await http.delete(location)
    await pub.close()
