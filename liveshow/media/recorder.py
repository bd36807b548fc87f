"""The recorder: a MediaSink that muxes the relay's encoded frames into a file, never decoding.

H.264 + Opus go to fragmented MP4 (a fragment at each keyframe and at least every second, flushed to
disk as it is written, so a file cut by a killed server plays up to its last complete fragment);
VP8 + Opus go to WebM (one cluster a second, flushed likewise). ``on_frame`` only stamps the frame
with its arrival time and queues it: the muxing runs in a thread of its own, so the relay's event
loop pays about a microsecond per frame and the cost never grows with the number of viewers.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from liveshow.media.bitstream import h264_has_idr, parameter_sets, sps_dimensions, vp8_keyframe_dimensions
from liveshow.media.frames import EncodedFrame

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
VIDEO_TB = Fraction(1, VIDEO_CLOCK)
AUDIO_TB = Fraction(1, AUDIO_CLOCK)
# How long (media time) to wait after the first keyframe for audio to show up before the file's
# streams are fixed: a container's tracks are declared in its header.
AUDIO_WAIT = VIDEO_CLOCK
# A jump of more than this between media time and wall time (a republish after a drop whose clock
# skipped the gap) starts a new anchor, so the timeline maps wall times onto the file correctly.
ANCHOR_JUMP_MS = 500
PROGRESS_EVERY = 10.0  # seconds of wall time between progress reports

CONTAINERS = {"H264": ("mp4", ".mp4"), "VP8": ("webm", ".webm")}
MUX_CODECS = {"H264": "h264", "VP8": "vp8"}


@dataclass
class RecordingInfo:
    """What the recorder tells its listener; offsets are milliseconds into the file."""

    path: Path
    container: str
    codecs: str
    started_wall_ms: int
    duration_ms: int = 0
    bytes: int = 0
    # (offset_ms, wall_ms) pairs: the wall time of a point in the file, one per clock discontinuity.
    anchors: list[tuple[int, int]] = field(default_factory=list)


class RecordingListener:
    """Callbacks from the writer thread; override what you need."""

    def started(self, info: RecordingInfo) -> None: ...

    def progress(self, info: RecordingInfo) -> None: ...

    def finished(self, info: RecordingInfo) -> None: ...

    def failed(self, info: RecordingInfo | None, error: BaseException) -> None: ...


class Recorder:
    """One show's recording. ``path_stem`` gets the container's extension once the codec is known."""

    def __init__(self, path_stem: Path, listener: RecordingListener | None = None) -> None:
        self.path_stem = path_stem
        self.listener = listener or RecordingListener()
        self._queue: queue.SimpleQueue[tuple[int, EncodedFrame] | None] = queue.SimpleQueue()
        self._closed = False
        self.info: RecordingInfo | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"recorder-{path_stem.name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ MediaSink (relay's event loop)

    def on_frame(self, frame: EncodedFrame) -> None:
        if not self._closed:
            self._queue.put((time.time_ns() // 1_000_000, frame))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the file is finished (after close); True when it is."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------ writer thread

    def _run(self) -> None:
        writer: MuxWriter | None = None
        try:
            writer = MuxWriter(self.path_stem, on_start=self._started)
            last_progress = time.monotonic()
            while (item := self._queue.get()) is not None:
                writer.write(item[1], item[0])
                if writer.info is not None and time.monotonic() - last_progress > PROGRESS_EVERY:
                    last_progress = time.monotonic()
                    self._tell("progress", self.listener.progress, writer.info)
            info = writer.finish()
        except Exception as exc:
            log.exception("recording %s failed", self.path_stem.name)
            self.error = exc
            info = writer.abort() if writer is not None else None
            self._tell("failed", self.listener.failed, info, exc)
            # Stop queueing: nothing would drain the queue any more.
            self._closed = True
            return
        if info is not None:
            self._tell("finished", self.listener.finished, info)

    def _started(self, info: RecordingInfo) -> None:
        self.info = info
        self._tell("started", self.listener.started, info)

    def _tell(self, what: str, callback: Callable[..., None], *args: Any) -> None:
        # A listener's failure (its database is down, say) is the listener's to retry: the media keeps
        # going into the file whatever happens to the bookkeeping.
        try:
            callback(*args)
        except Exception:
            log.exception("recording %s: the listener's %s failed", self.path_stem.name, what)


class MuxWriter:
    """Synchronous muxing of EncodedFrames into one file (used by the Recorder's thread and by tools)."""

    def __init__(self, path_stem: Path, on_start: Callable[[RecordingInfo], None] | None = None) -> None:
        self.path_stem = path_stem
        self.on_start = on_start
        self.info: RecordingInfo | None = None
        self._container: Any = None
        self._video: Any = None
        self._audio: Any = None
        self._pending: list[tuple[int, EncodedFrame]] = []
        self._keyframe: EncodedFrame | None = None
        self._video_base = 0
        self._audio_base = 0
        self._last_video = -1
        self._last_audio = -1
        self._end_pts = 0  # furthest media time written, 90 kHz
        self._drift_ms: int | None = None

    def write(self, frame: EncodedFrame, wall_ms: int) -> None:
        if self._container is not None:
            self._mux(frame, wall_ms)
            return
        if self._keyframe is None:
            if frame.kind == "video" and self._is_start(frame):
                self._keyframe = frame
                self._pending = [(wall_ms, frame)]
            return  # everything before the first keyframe is unplayable or out of sync: dropped
        self._pending.append((wall_ms, frame))
        saw_audio = any(f.kind == "audio" for _, f in self._pending)
        if saw_audio or (frame.kind == "video" and frame.pts - self._keyframe.pts >= AUDIO_WAIT):
            self._open(with_audio=saw_audio)
            pending, self._pending = self._pending, []
            for wall, queued in pending:
                self._mux(queued, wall)

    def _is_start(self, frame: EncodedFrame) -> bool:
        if frame.codec == "H264":
            return parameter_sets(frame.data) is not None and h264_has_idr(frame.data)
        if frame.codec == "VP8":
            return vp8_keyframe_dimensions(frame.data) is not None
        return False

    def _open(self, with_audio: bool) -> None:
        key = self._keyframe
        assert key is not None
        fmt, ext = CONTAINERS[key.codec]
        if key.codec == "H264":
            sets = parameter_sets(key.data)
            assert sets is not None
            width, height = sps_dimensions(sets[0])
            options = {
                "movflags": "frag_keyframe+empty_moov+default_base_moof",
                "frag_duration": "1000000",
                "flush_packets": "1",
            }
        else:
            dims = vp8_keyframe_dimensions(key.data)
            assert dims is not None
            width, height = dims
            options = {"cluster_time_limit": "1000", "flush_packets": "1"}
        path = self.path_stem.with_suffix(ext)
        path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(path), "w", format=fmt, container_options=options)
        try:
            # No codec context: packets go to the muxer as they are. MP4 needs the H.264 parameter
            # sets as extradata; PyAV extracts them from the first (key)frame's in-band SPS/PPS.
            self._video = container.add_mux_stream(MUX_CODECS[key.codec], width=width, height=height)
            self._video.time_base = VIDEO_TB
            if with_audio:
                # The Opus header (OpusHead) is extradata both containers require; an (unused) encoder
                # context writes it. Nothing is ever encoded with it.
                self._audio = container.add_stream("libopus", rate=AUDIO_CLOCK, layout="stereo")
                self._audio.time_base = AUDIO_TB
        except Exception:
            container.close()
            raise
        self._container = container
        self._video_base = key.pts
        self._audio_base = key.pts * AUDIO_CLOCK // VIDEO_CLOCK
        codecs = MUX_CODECS[key.codec] + ("+opus" if with_audio else "")
        self.info = RecordingInfo(
            path=path, container=fmt, codecs=codecs, started_wall_ms=self._pending[0][0]
        )
        self.info.anchors.append((0, self.info.started_wall_ms))
        if self.on_start is not None:
            self.on_start(self.info)

    def _mux(self, frame: EncodedFrame, wall_ms: int) -> None:
        if frame.kind == "video":
            if frame.codec != self._keyframe_codec():
                return  # a republish in another codec cannot go into this file
            pts = frame.pts - self._video_base
            if pts < 0:
                return
            # Timestamps must strictly increase for the muxer; the contract says they do, but a
            # republish racing the old publisher must not kill the recording.
            pts = max(pts, self._last_video + 1)
            self._last_video = pts
            stream, tb = self._video, VIDEO_TB
            self._track_anchor(pts, wall_ms)
            self._end_pts = max(self._end_pts, pts)
        else:
            if self._audio is None:
                return
            pts = frame.pts - self._audio_base
            if pts < 0:
                return
            pts = max(pts, self._last_audio + 1)
            self._last_audio = pts
            stream, tb = self._audio, AUDIO_TB
            self._end_pts = max(self._end_pts, pts * VIDEO_CLOCK // AUDIO_CLOCK)
        packet = av.Packet(frame.data)
        packet.stream = stream
        packet.time_base = tb
        packet.pts = packet.dts = pts
        if frame.kind == "audio":
            packet.duration = 960
        packet.is_keyframe = frame.keyframe
        self._container.mux_one(packet)
        assert self.info is not None
        self.info.duration_ms = self._end_pts * 1000 // VIDEO_CLOCK

    def _keyframe_codec(self) -> str:
        return self._keyframe.codec if self._keyframe is not None else ""

    def _track_anchor(self, pts: int, wall_ms: int) -> None:
        assert self.info is not None
        offset_ms = pts * 1000 // VIDEO_CLOCK
        drift = wall_ms - self.info.started_wall_ms - offset_ms
        if self._drift_ms is None:
            self._drift_ms = drift
        elif abs(drift - self._drift_ms) > ANCHOR_JUMP_MS:
            self._drift_ms = drift
            self.info.anchors.append((offset_ms, wall_ms))

    def finish(self) -> RecordingInfo | None:
        """Close the file (writes the index); None when no keyframe ever came."""
        if self._container is None and self._keyframe is not None:
            self._open(with_audio=any(f.kind == "audio" for _, f in self._pending))
            pending, self._pending = self._pending, []
            for wall, queued in pending:
                self._mux(queued, wall)
        if self._container is None:
            return None
        self._container.close()
        self._container = None
        assert self.info is not None
        self.info.bytes = self.info.path.stat().st_size
        return self.info

    def abort(self) -> RecordingInfo | None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                log.warning("closing a failed recording also failed", exc_info=True)
            self._container = None
        if self.info is not None and self.info.path.exists():
            self.info.bytes = self.info.path.stat().st_size
        return self.info
