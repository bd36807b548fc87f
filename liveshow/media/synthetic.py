"""A synthetic publisher: a moving pattern and a sine tone, encoded with PyAV into EncodedFrames.

Used by tests and benchmarks to exercise the recorder exactly as the relay would feed it (H.264 as
Annex-B access units with in-band SPS/PPS like WebRTC senders, VP8 frames, 20 ms Opus packets), and
as a demo source. Encoding happens here only; the recorder never decodes or encodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av
import numpy as np

from liveshow.media.frames import EncodedFrame

VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
OPUS_FRAME = 960  # 20 ms at 48 kHz


def _pattern(width: int, height: int, index: int) -> np.ndarray:
    """A frame that changes everywhere, so the encoder produces realistic bitrates."""
    y = np.arange(height, dtype=np.int32)[:, None]
    x = np.arange(width, dtype=np.int32)[None, :]
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = ((x + index * 4) % 256).astype(np.uint8)
    img[..., 1] = ((y + index * 2) % 256).astype(np.uint8)
    img[..., 2] = (((x // 32 + y // 32 + index // 5) % 2) * 200).astype(np.uint8)
    # A bright bar sweeping across so motion is visible when watched.
    bar = (index * 8) % width
    img[:, bar : bar + 16, :] = 255
    return img


def video_frames(
    seconds: float,
    codec: str = "H264",
    width: int = 640,
    height: int = 360,
    fps: int = 30,
    bitrate: int = 800_000,
    start_pts: int = 0,
    gop: int = 60,
) -> Iterator[EncodedFrame]:
    """Encoded video frames with show-clock pts starting at ``start_pts`` (90 kHz)."""
    name = "libx264" if codec == "H264" else "libvpx"
    encoder: Any = av.CodecContext.create(name, "w")
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, fps)
    encoder.framerate = Fraction(fps, 1)
    encoder.bit_rate = bitrate
    encoder.gop_size = gop
    if codec == "H264":
        # WebRTC-like: baseline, no B-frames (dts == pts), parameter sets in-band before each IDR.
        encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline"}
    else:
        encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    base = None
    count = int(seconds * fps)
    for index in range(count + 1):
        packets = encoder.encode(None if index == count else _frame(width, height, index))
        for packet in packets:
            assert packet.pts is not None
            if base is None:
                base = packet.pts
            pts = start_pts + (packet.pts - base) * VIDEO_CLOCK // fps
            yield EncodedFrame("video", codec, bytes(packet), pts, bool(packet.is_keyframe))


def _frame(width: int, height: int, index: int) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(_pattern(width, height, index), format="rgb24")
    frame = frame.reformat(format="yuv420p")
    frame.pts = index
    return frame


def audio_frames(seconds: float, start_pts: int = 0, tone_hz: float = 440.0) -> Iterator[EncodedFrame]:
    """20 ms Opus packets of a stereo sine, show-clock pts starting at ``start_pts`` (48 kHz)."""
    encoder: Any = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = AUDIO_CLOCK
    encoder.layout = "stereo"
    encoder.format = "s16"
    encoder.time_base = Fraction(1, AUDIO_CLOCK)
    encoder.bit_rate = 64000
    count = int(seconds * AUDIO_CLOCK / OPUS_FRAME)
    base = None
    for index in range(count + 1):
        frame = None
        if index < count:
            t = (np.arange(OPUS_FRAME) + index * OPUS_FRAME) / AUDIO_CLOCK
            wave = (np.sin(2 * math.pi * tone_hz * t) * 8000).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(np.repeat(wave, 2)[None, :], format="s16", layout="stereo")
            frame.sample_rate = AUDIO_CLOCK
            frame.pts = index * OPUS_FRAME
        for packet in encoder.encode(frame):
            assert packet.pts is not None
            if base is None:
                base = packet.pts
            yield EncodedFrame("audio", "opus", bytes(packet), start_pts + packet.pts - base, True)


def interleaved(video: list[EncodedFrame], audio: list[EncodedFrame]) -> list[EncodedFrame]:
    """Both streams in show-clock order, as a relay would deliver them."""
    return sorted(
        [*video, *audio],
        key=lambda f: f.pts / (VIDEO_CLOCK if f.kind == "video" else AUDIO_CLOCK),
    )
