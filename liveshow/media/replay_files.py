"""Recording files after the fact: probe what is playable, repair a file cut by a crash, read frames back.

All of it demuxes and remuxes packets; nothing is decoded.
"""

from __future__ import annotations

import heapq
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from liveshow.media.frames import EncodedFrame

log = logging.getLogger(__name__)

CONTENT_TYPES = {".mp4": "video/mp4", ".webm": "video/webm"}
_FRAME_CODECS = {"h264": "H264", "vp8": "VP8", "opus": "opus"}
_CLOCKS = {"video": 90000, "audio": 48000}


class CorruptRecording(Exception):
    """The file cannot be read as a recording (missing, truncated before its first fragment, garbage)."""


@dataclass(frozen=True)
class Probe:
    duration_ms: int
    video: str  # codec name, "" when none
    audio: str


def probe(path: Path) -> Probe:
    """What a recording holds, from its packets' timestamps (a cut file has no index to trust)."""
    try:
        with av.open(str(path)) as container:
            video = next((s for s in container.streams if s.type == "video"), None)
            audio = next((s for s in container.streams if s.type == "audio"), None)
            end = 0.0
            for packet in container.demux():
                if packet.pts is None or packet.time_base is None:
                    continue
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    except (av.error.FFmpegError, OSError) as exc:
        raise CorruptRecording(f"{path.name}: {exc}") from exc
    if video is None:
        raise CorruptRecording(f"{path.name}: no video stream")
    return Probe(
        duration_ms=int(end * 1000),
        video=video.codec_context.name if video.codec_context else "",
        audio=audio.codec_context.name if audio is not None and audio.codec_context else "",
    )


def repair(path: Path) -> Probe:
    """Rewrite a cut recording with everything still readable, so it has an index and a duration.

    The partial last fragment (or cluster) is dropped; the original is replaced atomically.
    """
    fmt = "mp4" if path.suffix == ".mp4" else "webm"
    options = (
        {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
        if fmt == "mp4"
        else {"cluster_time_limit": "1000"}
    )
    tmp = path.with_name(path.name + ".repair")
    try:
        with av.open(str(path)) as src, av.open(str(tmp), "w", format=fmt, container_options=options) as dst:
            streams: dict[int, Any] = {}
            for stream in src.streams:
                if stream.type in ("video", "audio"):
                    streams[stream.index] = dst.add_stream_from_template(stream, opaque=True)
            last: dict[int, int] = {}
            for packet in src.demux():
                if packet.dts is None or packet.stream.index not in streams or packet.size == 0:
                    continue
                if packet.dts <= last.get(packet.stream.index, -(2**62)):
                    continue
                last[packet.stream.index] = packet.dts
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    except (av.error.FFmpegError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise CorruptRecording(f"{path.name}: {exc}") from exc
    os.replace(tmp, path)
    return probe(path)


def read_frames(path: Path, start_ms: int = 0, window_s: float = 3.0) -> Iterator[EncodedFrame]:
    """A recording's packets as EncodedFrames (show-clock pts from zero), in time order.

    Fragmented MP4 stores a fragment's video run before its audio run, so file order is up to a fragment
    out of time order: frames are released from a heap once they are ``window_s`` behind the newest.

    H.264 comes out of MP4 length-prefixed; the ``h264_mp4toannexb`` filter gives the relay the
    Annex-B access units (parameter sets in front of keyframes) a live publisher would send.
    """
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise CorruptRecording(f"{path.name}: {exc}") from exc
    with container:
        video = next((s for s in container.streams if s.type == "video"), None)
        if video is None:
            raise CorruptRecording(f"{path.name}: no video stream")
        streams = [s for s in container.streams if s.type in ("video", "audio")]
        annexb = None
        if video.codec_context.name == "h264":
            annexb = av.BitStreamFilterContext("h264_mp4toannexb", video)
        if start_ms > 0:
            container.seek(start_ms * 1000, backward=True, any_frame=False)
        heap: list[tuple[float, int, EncodedFrame]] = []
        order = 0
        for packet in container.demux(streams):
            if packet.pts is None or packet.size == 0:
                continue
            outs = annexb.filter(packet) if annexb is not None and packet.stream is video else [packet]
            for out in outs:
                frame = _frame(out, packet.stream)
                at = frame.pts / _CLOCKS[frame.kind]
                heapq.heappush(heap, (at, order, frame))
                order += 1
                while heap and heap[0][0] < at - window_s:
                    yield heapq.heappop(heap)[2]
        if annexb is not None:
            for out in annexb.filter(None):
                frame = _frame(out, video)
                heapq.heappush(heap, (frame.pts / _CLOCKS["video"], order, frame))
                order += 1
        while heap:
            yield heapq.heappop(heap)[2]


def _frame(packet: Any, stream: Any) -> EncodedFrame:
    kind = stream.type
    clock = _CLOCKS[kind]
    pts = int(packet.pts * packet.time_base * clock) if packet.time_base is not None else int(packet.pts)
    return EncodedFrame(
        kind=kind,
        codec=_FRAME_CODECS.get(stream.codec_context.name, stream.codec_context.name),
        data=bytes(packet),
        pts=pts,
        keyframe=bool(packet.is_keyframe) if kind == "video" else True,
    )


def check_playable(path: Path) -> None:
    """Cheap check before serving: the file opens and its first video packet is there."""
    try:
        with av.open(str(path)) as container:
            video = next((s for s in container.streams if s.type == "video"), None)
            if video is None:
                raise CorruptRecording(f"{path.name}: no video stream")
            for packet in container.demux(video):
                if packet.size:
                    return
    except (av.error.FFmpegError, OSError) as exc:
        raise CorruptRecording(f"{path.name}: {exc}") from exc
    raise CorruptRecording(f"{path.name}: no video")
