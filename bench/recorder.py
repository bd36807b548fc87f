"""Recorder CPU cost: feed 720p30 H.264 (~1.5 Mbps) + Opus frames in real time, report CPU % of one core.

    /tmp/venv/bin/python bench/recorder.py --seconds 30

The frames are encoded once up front (not measured), then pushed at their real pace into the Recorder
(the same MediaSink the relay feeds); the process's CPU time over the run, minus the same pacing loop
with a sink that drops frames, is the recorder's cost. Also prints the flat-out muxing rate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from liveshow.media import synthetic
from liveshow.media.frames import EncodedFrame
from liveshow.media.recorder import MuxWriter, Recorder

CLIP_SECONDS = 10


class NullSink:
    def on_frame(self, frame: EncodedFrame) -> None:
        pass

    def close(self) -> None:
        pass


def clip(width: int, height: int, bitrate: int) -> list[EncodedFrame]:
    video = list(
        synthetic.video_frames(CLIP_SECONDS, width=width, height=height, fps=30, bitrate=bitrate, gop=60)
    )
    audio = list(synthetic.audio_frames(CLIP_SECONDS))
    return synthetic.interleaved(video, audio)


def looped(frames: list[EncodedFrame], seconds: int) -> list[EncodedFrame]:
    out: list[EncodedFrame] = []
    for loop in range(max(1, seconds // CLIP_SECONDS)):
        for f in frames:
            shift = loop * CLIP_SECONDS * (90000 if f.kind == "video" else 48000)
            out.append(EncodedFrame(f.kind, f.codec, f.data, f.pts + shift, f.keyframe))
    return out


def paced_cpu(frames: list[EncodedFrame], sink: NullSink | Recorder) -> tuple[float, float]:
    """(CPU seconds, wall seconds) to push the frames at their real pace, the sink's work included."""
    cpu0, wall0 = time.process_time(), time.monotonic()
    for frame in frames:
        due = wall0 + frame.pts / (90000 if frame.kind == "video" else 48000)
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sink.on_frame(frame)
    sink.close()
    if isinstance(sink, Recorder):
        sink.wait(60)
    return time.process_time() - cpu0, time.monotonic() - wall0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--bitrate", type=int, default=1_500_000)
    args = parser.parse_args()

    frames = looped(clip(args.width, args.height, args.bitrate), args.seconds)
    video_bytes = sum(len(f.data) for f in frames if f.kind == "video")
    duration = frames[-1].pts / (90000 if frames[-1].kind == "video" else 48000)
    print(
        f"input: {args.width}x{args.height}@30 H.264 {video_bytes * 8 / duration / 1e6:.2f} Mbps + Opus, "
        f"{len(frames)} frames, {duration:.1f} s"
    )

    with tempfile.TemporaryDirectory() as tmp:
        base_cpu, wall = paced_cpu(frames, NullSink())
        rec_cpu, wall2 = paced_cpu(frames, Recorder(Path(tmp) / "bench"))
        cost = (rec_cpu - base_cpu) / wall2
        print(f"pacing loop alone: {base_cpu / wall * 100:.2f}% of a core")
        print(f"with recorder:     {rec_cpu / wall2 * 100:.2f}% of a core")
        print(f"recorder cost:     {cost * 100:.2f}% of a core (target < 5%)")

        t0 = time.process_time()
        writer = MuxWriter(Path(tmp) / "flat")
        for frame in frames:
            writer.write(frame, 0)
        info = writer.finish()
        spent = time.process_time() - t0
        assert info is not None
        print(
            f"flat out:          {len(frames) / spent:,.0f} frames/s "
            f"({duration / spent:.0f}x real time), file {info.bytes / 1e6:.1f} MB"
        )

        t0 = time.perf_counter()
        sink = Recorder(Path(tmp) / "enqueue")
        for frame in frames:
            sink.on_frame(frame)
        enqueue = (time.perf_counter() - t0) / len(frames)
        sink.close()
        sink.wait(60)
        print(f"on_frame (relay's event loop): {enqueue * 1e6:.2f} us per frame")


if __name__ == "__main__":
    main()
