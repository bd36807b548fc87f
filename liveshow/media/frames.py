"""Encoded media frames as the relay carries them, and the sinks that receive them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    kind: str  # "video" | "audio"
    codec: str  # "H264" | "VP8" | "opus"
    data: bytes  # H264: Annex-B access unit; VP8: one frame; opus: one packet
    pts: int  # show clock in codec clock units (90000 video, 48000 audio): continuous across republishes
    keyframe: bool


class MediaSink(Protocol):
    def on_frame(self, frame: EncodedFrame) -> None: ...

    def close(self) -> None: ...
