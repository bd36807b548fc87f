"""Just enough of the H.264, VP8 and Opus bitstreams to describe a stream to a muxer, without decoding.

A muxer needs the picture size and, for MP4, the H.264 parameter sets (SPS/PPS) and an Opus header.
WebRTC senders put SPS/PPS in-band in front of each keyframe (Annex-B), so they are read from there.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

NAL_SPS = 7
NAL_PPS = 8
NAL_IDR = 5
_START_CODE = re.compile(b"\x00\x00\x01")


def annexb_nal_units(data: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex-B access unit (start codes removed, trailing zero bytes dropped)."""
    starts = [m.end() for m in _START_CODE.finditer(data)]
    for i, start in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        nal = data[start:end].rstrip(b"\x00") if i + 1 < len(starts) else data[start:end]
        if nal:
            yield nal


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def parameter_sets(access_unit: bytes) -> tuple[bytes, bytes] | None:
    """(SPS, PPS) of an access unit, or None when it carries no complete pair."""
    sps = pps = None
    for nal in annexb_nal_units(access_unit):
        kind = nal_type(nal)
        if kind == NAL_SPS and sps is None:
            sps = nal
        elif kind == NAL_PPS and pps is None:
            pps = nal
    return (sps, pps) if sps is not None and pps is not None else None


def annexb_extradata(sps: bytes, pps: bytes) -> bytes:
    # The MP4 muxer turns Annex-B extradata into an avcC box and converts every packet to length prefixes.
    return b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps


def h264_has_idr(access_unit: bytes) -> bool:
    return any(nal_type(nal) == NAL_IDR for nal in annexb_nal_units(access_unit))


class _Bits:
    def __init__(self, rbsp: bytes) -> None:
        self.data = rbsp
        self.pos = 0

    def bit(self) -> int:
        byte = self.data[self.pos >> 3]
        value = (byte >> (7 - (self.pos & 7))) & 1
        self.pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _unescape(nal: bytes) -> bytes:
    # Emulation prevention: 00 00 03 xx -> 00 00 xx.
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt != 0:
            nxt = (last + bits.se() + 256) % 256
        last = last if nxt == 0 else nxt


def sps_dimensions(sps: bytes) -> tuple[int, int]:
    """Display width and height from an SPS NAL unit (ITU-T H.264 7.3.2.1.1)."""
    try:
        bits = _Bits(_unescape(sps[1:]))
        profile_idc = bits.bits(8)
        bits.bits(16)  # constraint flags, level_idc
        bits.ue()  # seq_parameter_set_id
        chroma_format_idc = 1
        if profile_idc in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
            chroma_format_idc = bits.ue()
            if chroma_format_idc == 3:
                bits.bit()  # separate_colour_plane_flag
            bits.ue()  # bit_depth_luma_minus8
            bits.ue()  # bit_depth_chroma_minus8
            bits.bit()  # qpprime_y_zero_transform_bypass_flag
            if bits.bit():  # seq_scaling_matrix_present_flag
                for i in range(8 if chroma_format_idc != 3 else 12):
                    if bits.bit():
                        _skip_scaling_list(bits, 16 if i < 6 else 64)
        bits.ue()  # log2_max_frame_num_minus4
        poc_type = bits.ue()
        if poc_type == 0:
            bits.ue()
        elif poc_type == 1:
            bits.bit()
            bits.se()
            bits.se()
            for _ in range(bits.ue()):
                bits.se()
        bits.ue()  # max_num_ref_frames
        bits.bit()  # gaps_in_frame_num_value_allowed_flag
        width_mbs = bits.ue() + 1
        height_map_units = bits.ue() + 1
        frame_mbs_only = bits.bit()
        if not frame_mbs_only:
            bits.bit()
        bits.bit()  # direct_8x8_inference_flag
        crop = (0, 0, 0, 0)
        if bits.bit():
            crop = (bits.ue(), bits.ue(), bits.ue(), bits.ue())
    except IndexError as exc:
        raise ValueError("truncated SPS") from exc
    sub_w, sub_h = (2, 2) if chroma_format_idc == 1 else (2, 1) if chroma_format_idc == 2 else (1, 1)
    crop_unit_x = sub_w if chroma_format_idc else 1
    crop_unit_y = (sub_h if chroma_format_idc else 1) * (2 - frame_mbs_only)
    width = width_mbs * 16 - crop_unit_x * (crop[0] + crop[1])
    height = (2 - frame_mbs_only) * height_map_units * 16 - crop_unit_y * (crop[2] + crop[3])
    if width <= 0 or height <= 0:
        raise ValueError("bad SPS dimensions")
    return width, height


def vp8_keyframe_dimensions(frame: bytes) -> tuple[int, int] | None:
    """Width and height of a VP8 keyframe (RFC 6386 9.1), None for an interframe."""
    if len(frame) < 10 or frame[0] & 1 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width, height = struct.unpack("<HH", frame[6:10])
    return width & 0x3FFF, height & 0x3FFF


def opus_head(channels: int = 2, sample_rate: int = 48000, pre_skip: int = 0) -> bytes:
    """The OpusHead identification header (RFC 7845 5.1), the Opus extradata MP4 and WebM need."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, sample_rate, 0, 0)
