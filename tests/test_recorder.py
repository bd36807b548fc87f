"""The recorder against real encoded media: PyAV encodes a synthetic publisher, the recorder muxes the
packets untouched, PyAV (and a decoder) read the file back."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from liveshow.media import synthetic
from liveshow.media.bitstream import parameter_sets, sps_dimensions, vp8_keyframe_dimensions
from liveshow.media.frames import EncodedFrame
from liveshow.media.recorder import MuxWriter, Recorder, RecordingInfo, RecordingListener
from liveshow.media.replay_files import CorruptRecording, probe, read_frames, repair

ROOT = Path(__file__).resolve().parent.parent


class Collect(RecordingListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, RecordingInfo | None]] = []

    def started(self, info: RecordingInfo) -> None:
        self.events.append(("started", info))

    def finished(self, info: RecordingInfo) -> None:
        self.events.append(("finished", info))

    def failed(self, info: RecordingInfo | None, error: BaseException) -> None:
        self.events.append(("failed", info))


def publish(codec: str, seconds: float, video_start: int, audio_start: int) -> list[EncodedFrame]:
    video = list(synthetic.video_frames(seconds, codec=codec, start_pts=video_start))
    audio = list(synthetic.audio_frames(seconds, start_pts=audio_start))
    return synthetic.interleaved(video, audio)


def read_back(path: Path) -> dict[str, Any]:
    """Streams, per-stream packet times (seconds) and keyframe flags, read with PyAV."""
    out: dict[str, Any] = {"video": [], "audio": [], "keys": [], "codecs": {}}
    with av.open(str(path)) as container:
        for stream in container.streams:
            out["codecs"][stream.type] = stream.codec_context.name
        for packet in container.demux():
            if packet.dts is None:
                continue
            t = float(packet.pts * packet.time_base)
            out[packet.stream.type].append((t, float(packet.dts * packet.time_base)))
            if packet.stream.type == "video":
                out["keys"].append(packet.is_keyframe)
        out["duration"] = container.duration / 1_000_000 if container.duration else None
    return out


def decoded_video_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.parametrize(("codec", "suffix", "vname"), [("H264", ".mp4", "h264"), ("VP8", ".webm", "vp8")])
def test_ten_seconds_recorded_without_reencoding(tmp_path: Path, codec: str, suffix: str, vname: str) -> None:
    # The show clock started 5 s before the recording: audio 0.3 s ahead of the first keyframe is dropped.
    frames = publish(codec, 10, video_start=5 * 90000, audio_start=5 * 48000 - 14400)
    listener = Collect()
    recorder = Recorder(tmp_path / "show-1", listener)
    for frame in frames:
        recorder.on_frame(frame)
    recorder.close()
    assert recorder.wait(30)

    assert [kind for kind, _ in listener.events] == ["started", "finished"]
    info = listener.events[-1][1]
    assert info is not None and info.path == tmp_path / f"show-1{suffix}"
    assert info.bytes == info.path.stat().st_size > 100_000
    assert abs(info.duration_ms - 10_000) < 500

    got = read_back(info.path)
    assert got["codecs"] == {"video": vname, "audio": "opus"}
    assert got["duration"] is not None and abs(got["duration"] - 10.0) < 0.5
    assert got["keys"][0] is True
    for kind in ("video", "audio"):
        dts = [d for _, d in got[kind]]
        assert dts == sorted(dts) and len(set(dts)) == len(dts), f"{kind} timestamps not monotonic"
        assert len(dts) > 100
    # In sync: each packet sits at its show-clock time minus the first keyframe's (5 s), both streams.
    assert abs(got["video"][0][0] - got["audio"][0][0]) < 0.1
    last_video = max(f.pts for f in frames if f.kind == "video") / 90000 - 5
    last_audio = max(f.pts for f in frames if f.kind == "audio") / 48000 - 5
    assert abs(got["video"][-1][0] - last_video) < 0.01
    assert abs(got["audio"][-1][0] - last_audio) < 0.01
    # Payloads went through untouched: the video decodes completely.
    assert decoded_video_frames(info.path) == len(got["video"])


def test_video_starts_at_first_keyframe_and_stays_in_sync(tmp_path: Path) -> None:
    video = list(synthetic.video_frames(4, start_pts=90000, gop=30))
    audio = list(synthetic.audio_frames(5, start_pts=0))
    # A viewer joins mid-GOP: drop frames up to the second keyframe (t = 1 + 1 s show time).
    second_key = [i for i, f in enumerate(video) if f.keyframe][1]
    frames = synthetic.interleaved(video[second_key - 5 :], audio)
    writer = MuxWriter(tmp_path / "rec")
    for frame in frames:
        writer.write(frame, 0)
    info = writer.finish()
    assert info is not None
    got = read_back(info.path)
    assert got["keys"][0] is True
    assert got["video"][0][0] == 0.0
    # Audio recorded from the keyframe's show time (2 s) onwards; a tone packet at show time 2.0 s is at 0.
    assert 0.0 <= got["audio"][0][0] < 0.021
    assert abs(got["duration"] - 3.0) < 0.5


def test_republish_after_a_drop_continues_the_same_file(tmp_path: Path) -> None:
    listener = Collect()
    recorder = Recorder(tmp_path / "rec", listener)
    first = publish("H264", 3, 0, 0)
    # The publisher comes back 2 s later; the show clock continues (contract), new keyframe first.
    second = publish("H264", 3, 5 * 90000, 5 * 48000)
    wall = 1_000_000
    for frame in first + second:
        recorder.on_frame(frame)
    recorder.close()
    assert recorder.wait(30)
    info = listener.events[-1][1]
    assert info is not None and listener.events[-1][0] == "finished"
    got = read_back(info.path)
    video_times = [t for t, _ in got["video"]]
    assert any(b - a > 1.5 for a, b in itertools.pairwise(video_times))
    assert abs(got["duration"] - 8.0) < 0.5
    assert decoded_video_frames(info.path) == len(video_times)
    del wall


def test_wall_clock_anchor_when_the_media_clock_skips_a_gap(tmp_path: Path) -> None:
    writer = MuxWriter(tmp_path / "rec")
    frames = list(synthetic.video_frames(2, fps=10))
    for f in frames[:10]:
        writer.write(f, 10_000 + f.pts // 90)
    # 5 s of wall time pass while the media clock continues seamlessly.
    for f in frames[10:]:
        writer.write(f, 15_000 + f.pts // 90)
    info = writer.finish()
    assert info is not None
    assert info.anchors == [(0, 10_000), (1000, 16_000)]


class DatabaseDown(Collect):
    """The row writer of a show recorded while its database is down: every bookkeeping call raises."""

    def started(self, info: RecordingInfo) -> None:
        super().started(info)
        raise ConnectionRefusedError("database down")

    def progress(self, info: RecordingInfo) -> None:
        self.events.append(("progress", info))
        raise ConnectionRefusedError("database down")


def test_a_failing_listener_never_stops_the_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue #20: the first database error in a bookkeeping callback ended the recording (file cut at ~40 s).
    monkeypatch.setattr("liveshow.media.recorder.PROGRESS_EVERY", 0.0)  # a progress report per frame
    listener = DatabaseDown()
    recorder = Recorder(tmp_path / "show-1", listener)
    for frame in publish("H264", 4, 0, 0):
        recorder.on_frame(frame)
    recorder.close()
    assert recorder.wait(30)
    kinds = [kind for kind, _ in listener.events]
    assert kinds[0] == "started" and kinds[-1] == "finished" and "failed" not in kinds
    assert kinds.count("progress") > 10  # it kept reporting after each refusal
    assert recorder.error is None
    info = listener.events[-1][1]
    assert info is not None and abs(info.duration_ms - 4000) < 500
    got = read_back(info.path)
    assert got["duration"] is not None and abs(got["duration"] - 4.0) < 0.5
    assert decoded_video_frames(info.path) == len(got["video"])


def test_no_keyframe_no_file(tmp_path: Path) -> None:
    listener = Collect()
    recorder = Recorder(tmp_path / "rec", listener)
    for frame in synthetic.audio_frames(1):
        recorder.on_frame(frame)
    recorder.on_frame(EncodedFrame("video", "H264", b"\x00\x00\x00\x01\x41\x9a", 0, False))
    recorder.close()
    assert recorder.wait(10)
    assert listener.events == []
    assert list(tmp_path.iterdir()) == []


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from liveshow.media import synthetic
    from liveshow.media.recorder import Recorder
    video = list(synthetic.video_frames(8, gop=600))  # one keyframe: fragments cut by duration only
    audio = list(synthetic.audio_frames(8))
    recorder = Recorder(Path(sys.argv[1]))
    for frame in synthetic.interleaved(video, audio):
        recorder.on_frame(frame)
        if frame.kind == "video" and frame.pts >= 6 * 90000:
            break
    time.sleep(1.0)  # the writer thread catches up
    print("written", flush=True)
    time.sleep(60)
    """
)


def test_recording_cut_by_sigkill_plays_to_its_last_fragment(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path / "cut")],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"written"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    path = tmp_path / "cut.mp4"
    got = read_back(path)
    assert got["keys"][0] is True
    # Fragments of at most a second: only the one being built when killed is lost.
    assert got["video"][-1][0] >= 4.5
    assert decoded_video_frames(path) == len(got["video"])
    repaired = repair(path)
    assert repaired.video == "h264" and repaired.audio == "opus"
    assert 4500 <= repaired.duration_ms <= 6100
    assert read_back(path)["duration"] == pytest.approx(repaired.duration_ms / 1000, abs=0.1)


def test_read_frames_round_trip_as_annexb(tmp_path: Path) -> None:
    frames = publish("H264", 3, 0, 0)
    writer = MuxWriter(tmp_path / "rec")
    for frame in frames:
        writer.write(frame, 0)
    info = writer.finish()
    assert info is not None
    back = list(read_frames(info.path))
    video = [f for f in back if f.kind == "video"]
    audio = [f for f in back if f.kind == "audio"]
    assert video[0].keyframe and parameter_sets(video[0].data) is not None
    assert [f.data for f in video] == [f.data for f in frames if f.kind == "video"]
    assert [f.pts for f in video] == [f.pts for f in frames if f.kind == "video"]
    assert [f.data for f in audio] == [f.data for f in frames if f.kind == "audio"]
    # And the frames read back make a valid recording again (what a re-air relays).
    again = MuxWriter(tmp_path / "again")
    for frame in synthetic.interleaved(video, audio):
        again.write(frame, 0)
    assert again.finish() is not None


def test_corrupt_files_are_reported(tmp_path: Path) -> None:
    garbage = tmp_path / "bad.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypiso5" + os.urandom(500))
    with pytest.raises(CorruptRecording):
        probe(garbage)
    with pytest.raises(CorruptRecording):
        probe(tmp_path / "missing.mp4")
    with pytest.raises(CorruptRecording):
        list(read_frames(tmp_path / "missing.mp4"))


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (640, 360), (1920, 1080), (322, 242)])
def test_sps_dimensions_of_encoder_output(width: int, height: int) -> None:
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.options = {"preset": "ultrafast", "profile": "high"}
    frame = av.VideoFrame(width, height, "yuv420p")
    frame.pts = 0
    packets = [*encoder.encode(frame), *encoder.encode(None)]
    sets = parameter_sets(bytes(packets[0]))
    assert sets is not None
    assert sps_dimensions(sets[0]) == (width, height)
    vp8 = next(iter(synthetic.video_frames(0.1, codec="VP8", width=width, height=height)))
    assert vp8_keyframe_dimensions(vp8.data) == (width, height)
