"""Where parts and segments are cut: encoded frames in, fMP4 parts into the window. Pure (wall time is
passed in with each frame; no I/O).

Rules (times on the show's 90 kHz clock):

* Nothing is written before an H.264 keyframe that carries its parameter sets (IDR + SPS/PPS); the
  init segment is made from them.
* A part ends when a video frame arrives at least ``PART_CUT`` after the part began, or at a keyframe
  (so a keyframe starts an INDEPENDENT part where a player may join). Its last frame's duration is the
  gap to the frame that ended it, so a part is complete the moment that frame is in.
* A segment ends at a keyframe once it is ``SEGMENT_MIN`` long, or at a part boundary once it reaches
  ``SEGMENT_MAX`` (the playlist's target duration) when no keyframe came.
* A keyframe is wanted ``KEYFRAME_LEAD`` before the segment reaches ``SEGMENT_TARGET`` and again every
  ``KEYFRAME_RETRY`` after that until one comes (the relay rate-limits what reaches the publisher).
* A keyframe with other parameter sets (a new picture size) starts a new init segment, and the
  segment after it is a discontinuity.
"""

from __future__ import annotations

from dataclasses import dataclass

from liveshow.hls.boxes import (
    AUDIO_TIMESCALE,
    AUDIO_TRACK,
    VIDEO_TIMESCALE,
    VIDEO_TRACK,
    Sample,
    TrackRun,
    VideoConfig,
    avcc_sample,
    fragment,
    init_segment,
)
from liveshow.hls.window import Part, Window
from liveshow.media.bitstream import h264_has_idr, parameter_sets, sps_dimensions
from liveshow.media.frames import EncodedFrame

PART_CUT = VIDEO_TIMESCALE // 5  # 200 ms
PART_TARGET = 0.334  # seconds, as announced: a part is PART_CUT plus at most one frame (30 fps and up)
SEGMENT_MIN = VIDEO_TIMESCALE * 3 // 2
SEGMENT_TARGET = VIDEO_TIMESCALE * 2
SEGMENT_MAX = VIDEO_TIMESCALE * 4
TARGET_DURATION = SEGMENT_MAX // VIDEO_TIMESCALE  # EXT-X-TARGETDURATION, whole seconds
KEYFRAME_LEAD = VIDEO_TIMESCALE // 4
KEYFRAME_RETRY = VIDEO_TIMESCALE // 2
OPUS_FRAME = 960  # 20 ms: the duration given to the last audio sample of a part


@dataclass(slots=True)
class _Video:
    pts: int
    data: bytes
    sync: bool


class Assembler:
    def __init__(self, window: Window, audio: bool) -> None:
        self.window = window
        self.audio = audio  # whether the init segment declares an Opus track
        self.unsupported: str | None = None  # a video codec fMP4 playback cannot take (VP8)
        self.config: VideoConfig | None = None
        self.init_id = -1
        self._video: list[_Video] = []
        self._audio: list[tuple[int, bytes]] = []
        self._video_base = 0
        self._audio_base = 0
        self._last_video = -1
        self._last_audio = -1
        self._part_start = 0
        self._segment_start = 0
        self._next_ask = 0
        self._sequence = 0

    # ------------------------------------------------------------ input

    def video(self, frame: EncodedFrame, wall_ms: int) -> bool:
        """Take one video frame; True when a part was completed (the window changed)."""
        if frame.codec != "H264":
            self.unsupported = frame.codec
            return False
        self.unsupported = None
        sets = parameter_sets(frame.data) if frame.keyframe else None
        start = sets is not None and h264_has_idr(frame.data)
        if self.config is None:
            if sets is None or not start:
                return False  # a player cannot start before the first keyframe: dropped
            self._video_base = frame.pts
            self._audio_base = frame.pts * AUDIO_TIMESCALE // VIDEO_TIMESCALE
            self._begin(sets, frame.pts, wall_ms, discontinuity=False)
            self._add_video(frame.pts, frame.data, True)
            return False
        # Timestamps must strictly increase; a republish racing the old publisher must not break it.
        pts = max(frame.pts, self._last_video + 1)
        completed = False
        age = pts - self._segment_start
        if sets is not None and start and sets != (self.config.sps, self.config.pps):
            completed = self._close_part(pts)
            self.window.close_segment()
            self._begin(sets, pts, wall_ms, discontinuity=True)
        elif self._video and ((start and age >= SEGMENT_MIN) or age >= SEGMENT_MAX):
            completed = self._close_part(pts)
            self.window.close_segment()
            self._open_segment(pts, wall_ms, discontinuity=False)
        elif self._video and (start or pts - self._part_start >= PART_CUT):
            completed = self._close_part(pts)
        self._add_video(pts, frame.data, start)
        return completed

    def audio_frame(self, frame: EncodedFrame) -> None:
        if not self.audio or self.config is None:
            return
        pts = frame.pts - self._audio_base
        if pts < 0:
            return
        pts = max(pts, self._last_audio + 1)
        self._last_audio = pts
        self._audio.append((pts, frame.data))

    def wants_keyframe(self) -> bool:
        """Whether to ask the publisher for a keyframe now (called after each video frame)."""
        if self.unsupported is not None:
            return False
        if self.config is None:
            return True  # the relay's rate limit spaces these out
        if self._last_video - self._segment_start >= self._next_ask:
            self._next_ask += KEYFRAME_RETRY
            return True
        return False

    def finish(self) -> bool:
        """The show ended: the open part and segment are completed; True when a part was."""
        completed = False
        if self._video:
            completed = self._close_part(self._last_video + VIDEO_TIMESCALE // 30)
        if self.window.segments:
            self.window.close_segment()
        self.window.ended = True
        return completed

    # ------------------------------------------------------------ cutting

    def _begin(self, sets: tuple[bytes, bytes], pts: int, wall_ms: int, discontinuity: bool) -> None:
        sps, pps = sets
        width, height = sps_dimensions(sps)
        self.config = VideoConfig(sps=sps, pps=pps, width=width, height=height)
        self.init_id += 1
        self.window.add_init(self.init_id, init_segment(self.config, self.audio))
        self._open_segment(pts, wall_ms, discontinuity)

    def _open_segment(self, pts: int, wall_ms: int, discontinuity: bool) -> None:
        self.window.open_segment(self.init_id, discontinuity, wall_ms)
        self._segment_start = pts
        self._part_start = pts
        self._next_ask = SEGMENT_TARGET - KEYFRAME_LEAD

    def _add_video(self, pts: int, data: bytes, sync: bool) -> None:
        self._last_video = pts
        self._video.append(_Video(pts - self._video_base, avcc_sample(data), sync))

    def _close_part(self, end_pts: int) -> bool:
        """Write the open part, its last video frame lasting until ``end_pts``; True if it had frames."""
        video, self._video = self._video, []
        audio, self._audio = self._audio, []
        start, self._part_start = self._part_start, end_pts
        if not video:
            return False
        end = end_pts - self._video_base
        samples = [
            Sample(v.data, (video[i + 1].pts if i + 1 < len(video) else end) - v.pts, v.sync)
            for i, v in enumerate(video)
        ]
        runs = [TrackRun(VIDEO_TRACK, video[0].pts, samples)]
        if audio:
            sounds = [
                Sample(data, (audio[i + 1][0] if i + 1 < len(audio) else pts + OPUS_FRAME) - pts)
                for i, (pts, data) in enumerate(audio)
            ]
            runs.append(TrackRun(AUDIO_TRACK, audio[0][0], sounds))
        self._sequence += 1
        data = fragment(self._sequence, runs)
        self.window.add_part(Part((end_pts - start) / VIDEO_TIMESCALE, video[0].sync, data))
        return True
