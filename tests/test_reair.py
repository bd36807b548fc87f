"""Re-air building blocks against real files and the real bus: frames read back from a recording are
pushed at their real pace (and make a valid stream again), item cards come back at their offsets.

The end-to-end re-air to an aiortc viewer needs the media service (liveshow.media, another branch)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.media import synthetic
from liveshow.media.frames import EncodedFrame
from liveshow.media.recorder import MuxWriter, Recorder
from liveshow.media.replay_files import probe, read_frames
from liveshow.replay.reair import ReAirService, cues_of, pace
from liveshow.showlog import show_topic
from tests.test_replay import context_of, make_show


def test_pace_pushes_recording_frames_in_real_time(tmp_path: Path) -> None:
    writer = MuxWriter(tmp_path / "source")
    for frame in synthetic.interleaved(list(synthetic.video_frames(2)), list(synthetic.audio_frames(2))):
        writer.write(frame, 0)
    info = writer.finish()
    assert info is not None

    pushed: list[tuple[float, EncodedFrame]] = []
    again = Recorder(tmp_path / "again")

    class Sink:
        def push(self, frame: EncodedFrame) -> None:
            pushed.append((time.monotonic(), frame))
            again.on_frame(frame)

    async def run() -> tuple[float, int]:
        start = time.monotonic()
        return start, await pace(read_frames(info.path), Sink())

    start, count = asyncio.run(run())
    again.close()
    assert again.wait(20)
    assert count == len(pushed) > 150
    lateness = [at - start - f.pts / (90000 if f.kind == "video" else 48000) for at, f in pushed]
    assert min(lateness) >= -0.002  # never early
    assert sorted(lateness)[int(len(lateness) * 0.95)] < 0.05  # and on time
    assert 1.9 < pushed[-1][0] - start < 2.3
    assert pushed[0][1].kind == "video" and pushed[0][1].keyframe
    # What the relay received is a valid H.264 + Opus stream again.
    assert again.info is not None
    assert abs(probe(again.info.path).duration_ms - info.duration_ms) < 100


def test_cues_keep_offsets_and_republish_on_the_new_show(client: TestClient, app: Starlette) -> None:
    context = context_of(app)
    seller, _original = make_show(context)
    _, rerun = make_show(context, seller, state="scheduled", went_live_at=None, ended_at=None)
    assert rerun.id is not None
    anchors = [(0, 1_000_000)]
    events = [
        ("chat.message", {"text": "not a cue"}, 1_000_100),
        ("lot.opened", {"lot": {"lot_no": 1, "listing_id": 7, "kind": "claim"}}, 1_000_300),
        ("lot.closed", {"lot_no": 1, "listing_id": 7, "outcome": "sold", "winner_id": 5}, 1_000_700),
        ("lot.opened", {"lot": {"lot_no": 2, "listing_id": 8, "kind": "auction"}}, 999_000),  # before start
    ]
    cues = cues_of(events, anchors)
    assert [(c.offset_ms, c.type) for c in cues] == [
        (0, "lot.opened"),
        (300, "lot.opened"),
        (700, "lot.closed"),
    ]
    assert context.recordings is not None
    service = ReAirService(context, context.recordings)

    async def run() -> list[tuple[float, str, dict[str, object]]]:
        sub = context.bus.subscribe(show_topic(rerun.id))  # type: ignore[arg-type]
        start = time.monotonic()
        task = asyncio.create_task(service._play_cues(rerun.id, cues))  # type: ignore[arg-type]
        got = []
        for _ in range(3):
            event = await sub.get(timeout=3)
            assert event is not None
            got.append((time.monotonic() - start, event.type, event.data))
        await task
        sub.close()
        return got

    assert client.portal is not None
    got = client.portal.call(run)
    assert [t for _, t, _ in got] == ["lot.opened", "lot.opened", "lot.closed"]
    assert abs(got[1][0] - 0.3) < 0.1 and abs(got[2][0] - 0.7) < 0.1
    assert got[1][2] == {"lot": {"lot_no": 1, "listing_id": 7, "kind": "claim"}}
    # Who won the original is not announced on the rerun.
    assert got[2][2] == {"lot_no": 1, "listing_id": 7, "outcome": "rerun"}
