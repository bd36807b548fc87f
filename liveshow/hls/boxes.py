"""CMAF/fMP4 boxes (ISO/IEC 14496-12) for H.264 + Opus, written from encoded frames, never decoding.

Pure byte builders: an init segment (``ftyp`` + ``moov`` declaring the tracks) and a fragment
(``moof`` + ``mdat``) per LL-HLS part. PyAV's mp4 muxer (the recorder's) decides on its own where a
fragment ends and holds it until the next packet; an LL-HLS part must end exactly where the playlist
says, the moment its last frame is in, so the few boxes are written here.

Only H.264 goes into fMP4: browsers' MSE refuses VP8 in MP4 (Chromium answers
``isTypeSupported('video/mp4; codecs="vp8"')`` false), so VP8 shows have no HLS rendition.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from liveshow.media.bitstream import annexb_nal_units

VIDEO_TRACK = 1
AUDIO_TRACK = 2
VIDEO_TIMESCALE = 90_000
AUDIO_TIMESCALE = 48_000
# trun sample flags: a sync sample, and a sample that depends on others (ISO 14496-12 8.8.3.1).
SYNC_SAMPLE = 0x02000000
NON_SYNC_SAMPLE = 0x01010000
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_HIGH_PROFILES = (100, 110, 122, 144)  # avcC carries chroma format and bit depths for these


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I", 8 + len(body)) + kind + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


@dataclass(frozen=True, slots=True)
class VideoConfig:
    sps: bytes  # NAL units without start codes
    pps: bytes
    width: int
    height: int

    @property
    def codec(self) -> str:
        """The RFC 6381 codec string (avc1.PPCCLL) for HLS CODECS and MSE."""
        return "avc1." + self.sps[1:4].hex()


@dataclass(frozen=True, slots=True)
class Sample:
    data: bytes
    duration: int  # in the track's timescale
    sync: bool = True


@dataclass(frozen=True, slots=True)
class TrackRun:
    track_id: int
    decode_time: int  # of the first sample, in the track's timescale, from the stream's start
    samples: Sequence[Sample]


def avcc_sample(access_unit: bytes) -> bytes:
    """An Annex-B access unit as MP4 wants it: each NAL unit prefixed by its 4-byte length. The access
    unit delimiter goes; parameter sets stay in-band (a republish with a new picture size brings them)."""
    nals = [nal for nal in annexb_nal_units(access_unit) if nal[0] & 0x1F != 9]
    return b"".join(struct.pack(">I", len(nal)) + nal for nal in nals)


def init_segment(video: VideoConfig, audio: bool) -> bytes:
    """``ftyp`` + ``moov``: the tracks (video 90 kHz, optional Opus 48 kHz), no samples (fragmented)."""
    ftyp = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6cmfcmp41avc1")
    mvhd = full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, 1000, 0),
        struct.pack(">IH", 0x10000, 0x100),
        bytes(10),
        _MATRIX,
        bytes(24),
        struct.pack(">I", AUDIO_TRACK + 1),
    )
    traks = [_video_trak(video)]
    trexs = [_trex(VIDEO_TRACK)]
    if audio:
        traks.append(_audio_trak())
        trexs.append(_trex(AUDIO_TRACK))
    return ftyp + box(b"moov", mvhd, *traks, box(b"mvex", *trexs))


def _trex(track_id: int) -> bytes:
    return full_box(b"trex", 0, 0, struct.pack(">IIIII", track_id, 1, 0, 0, 0))


def _trak(
    track_id: int,
    timescale: int,
    handler: bytes,
    media_header: bytes,
    entry: bytes,
    volume: int,
    width: int,
    height: int,
) -> bytes:
    tkhd = full_box(
        b"tkhd",
        0,
        3,
        struct.pack(">IIIII", 0, 0, track_id, 0, 0),
        bytes(8),
        struct.pack(">hhhH", 0, 0, volume, 0),
        _MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, 0x55C4, 0))  # "und"
    name = b"VideoHandler\x00" if handler == b"vide" else b"SoundHandler\x00"
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I", 0), handler, bytes(12), name)
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry),
        full_box(b"stts", 0, 0, struct.pack(">I", 0)),
        full_box(b"stsc", 0, 0, struct.pack(">I", 0)),
        full_box(b"stsz", 0, 0, struct.pack(">II", 0, 0)),
        full_box(b"stco", 0, 0, struct.pack(">I", 0)),
    )
    minf = box(b"minf", media_header, dinf, stbl)
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))


def _video_trak(video: VideoConfig) -> bytes:
    sps, pps = video.sps, video.pps
    avcc = struct.pack(">BBBBBB", 1, sps[1], sps[2], sps[3], 0xFF, 0xE1)
    avcc += struct.pack(">H", len(sps)) + sps + struct.pack(">BH", 1, len(pps)) + pps
    if sps[1] in _HIGH_PROFILES:
        avcc += bytes((0xFC | 1, 0xF8, 0xF8, 0))  # 4:2:0, 8 bits, no SPS extensions (what WebRTC sends)
    entry = box(
        b"avc1",
        bytes(6),
        struct.pack(">H", 1),
        bytes(16),
        struct.pack(">HH", video.width, video.height),
        struct.pack(">II", 0x480000, 0x480000),
        bytes(4),
        struct.pack(">H", 1),
        bytes(32),
        struct.pack(">Hh", 0x18, -1),
        box(b"avcC", avcc),
    )
    vmhd = full_box(b"vmhd", 0, 1, bytes(8))
    return _trak(VIDEO_TRACK, VIDEO_TIMESCALE, b"vide", vmhd, entry, 0, video.width, video.height)


def _audio_trak() -> bytes:
    # dOps (Opus in ISOBMFF, 4.3.2): big-endian, unlike OpusHead. WebRTC Opus: stereo, no pre-skip.
    dops = box(b"dOps", struct.pack(">BBHIhB", 0, 2, 0, AUDIO_TIMESCALE, 0, 0))
    entry = box(
        b"Opus",
        bytes(6),
        struct.pack(">H", 1),
        bytes(8),
        struct.pack(">HHHH", 2, 16, 0, 0),
        struct.pack(">I", AUDIO_TIMESCALE << 16),
        dops,
    )
    smhd = full_box(b"smhd", 0, 0, bytes(4))
    return _trak(AUDIO_TRACK, AUDIO_TIMESCALE, b"soun", smhd, entry, 0x100, 0, 0)


def fragment(sequence: int, runs: Sequence[TrackRun]) -> bytes:
    """``moof`` + ``mdat`` holding each run's samples (runs without samples are left out)."""
    runs = [run for run in runs if run.samples]
    # trun's data offset counts from the moof's first byte (default-base-is-moof); the moof's size does
    # not depend on the offsets' values, so it is built once with zeros to learn it.
    moof_size = len(_moof(sequence, runs, [0] * len(runs)))
    offsets, at = [], moof_size + 8
    for run in runs:
        offsets.append(at)
        at += sum(len(s.data) for s in run.samples)
    moof = _moof(sequence, runs, offsets)
    payload = b"".join(s.data for run in runs for s in run.samples)
    return moof + struct.pack(">I", 8 + len(payload)) + b"mdat" + payload


def _moof(sequence: int, runs: Sequence[TrackRun], offsets: Sequence[int]) -> bytes:
    trafs = []
    for run, offset in zip(runs, offsets, strict=True):
        tfhd = full_box(b"tfhd", 0, 0x020000, struct.pack(">I", run.track_id))
        tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", run.decode_time))
        entries = b"".join(
            struct.pack(">III", s.duration, len(s.data), SYNC_SAMPLE if s.sync else NON_SYNC_SAMPLE)
            for s in run.samples
        )
        trun = full_box(b"trun", 0, 0x000701, struct.pack(">Ii", len(run.samples), offset), entries)
        trafs.append(box(b"traf", tfhd, tfdt, trun))
    return box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", sequence)), *trafs)
