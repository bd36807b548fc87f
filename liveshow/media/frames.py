"""The relay's unit of input: one encoded frame on the show clock, and the sink protocol.

Everything that feeds a show (a WebRTC publisher, a re-air of a recording) produces EncodedFrames;
everything that consumes the publisher's media besides viewers (the recorder) is a MediaSink.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

VIDEO_CLOCK = 90_000
AUDIO_CLOCK = 48_000


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    kind: str  # "video" | "audio"
    codec: str  # "H264" | "VP8" | "opus"
    data: bytes  # H264: Annex-B access unit; VP8: one frame; opus: one packet
    pts: int  # show clock in codec clock units (90000 video, 48000 audio): continuous across republishes
    keyframe: bool


class MediaSink(Protocol):
    def on_frame(self, frame: EncodedFrame) -> None: ...  # must not block or raise

    def close(self) -> None: ...


def clock_rate(kind: str) -> int:
    return VIDEO_CLOCK if kind == "video" else AUDIO_CLOCK


def is_keyframe(codec: str, data: bytes) -> bool:
    """Whether a decoder can start at this frame (audio frames always can)."""
    if codec == "VP8":
        # RFC 6386 9.1: bit 0 of the frame tag is 0 for a key frame.
        return bool(data) and not data[0] & 0x01
    if codec == "H264":
        return any(nal in (5, 7) for nal in h264_nal_types(data))
    return True


def h264_nal_types(data: bytes) -> list[int]:
    types: list[int] = []
    i = data.find(b"\x00\x00\x01")
    while i != -1 and i + 3 < len(data):
        types.append(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return types
