"""The VP8 payload descriptor (RFC 7741 4.2): every combination of optional fields read back, truncation
refused, keyframe starts, and PictureID rewriting."""

from __future__ import annotations

import itertools

import pytest
from aiortc.codecs.vpx import Vp8Encoder

from liveshow.media.vp8 import Vp8DescriptorError, is_keyframe_start, parse, with_picture_id


def descriptor(
    *,
    start: bool = True,
    partition: int = 0,
    non_reference: bool = False,
    picture_id: int | None = None,
    long_id: bool = True,
    tl0: int | None = None,
    tid: int | None = None,
    sync: bool = False,
    keyidx: int | None = None,
) -> bytes:
    """Written bit by bit from the RFC's figure, independently of the parser."""
    ext = picture_id is not None or tl0 is not None or tid is not None or keyidx is not None
    out = bytearray(
        [(0x80 if ext else 0) | (0x20 if non_reference else 0) | (0x10 if start else 0) | partition]
    )
    if ext:
        out.append(
            (0x80 if picture_id is not None else 0)
            | (0x40 if tl0 is not None else 0)
            | (0x20 if tid is not None else 0)
            | (0x10 if keyidx is not None else 0)
        )
        if picture_id is not None:
            out += bytes([0x80 | (picture_id >> 8), picture_id & 0xFF]) if long_id else bytes([picture_id])
        if tl0 is not None:
            out.append(tl0)
        if tid is not None or keyidx is not None:
            out.append(((tid or 0) << 6) | (0x20 if sync else 0) | (keyidx or 0))
    return bytes(out)


@pytest.mark.parametrize(
    "has_pid,long_id,has_tl0,has_tid,has_key,sync",
    list(
        itertools.product(
            [False, True], [False, True], [False, True], [False, True], [False, True], [False, True]
        )
    ),
)
def test_every_combination_of_fields_reads_back(
    has_pid: bool, long_id: bool, has_tl0: bool, has_tid: bool, has_key: bool, sync: bool
) -> None:
    pid = 0x1234 if long_id else 0x55
    head = descriptor(
        start=True,
        partition=0,
        picture_id=pid if has_pid else None,
        long_id=long_id,
        tl0=200 if has_tl0 else None,
        tid=2 if has_tid else None,
        sync=sync and has_tid,
        keyidx=17 if has_key else None,
    )
    desc = parse(head + b"\x10\x02\x9d")
    assert desc.size == len(head)
    assert desc.picture_id == (pid if has_pid else -1)
    assert desc.picture_id_bits == ((15 if long_id else 7) if has_pid else 0)
    assert desc.picture_id_at == (2 if has_pid else -1)
    assert desc.tl0picidx == (200 if has_tl0 else -1)
    assert desc.tid == (2 if has_tid else -1)
    assert desc.layer_sync == (sync and has_tid)
    assert desc.keyidx == (17 if has_key else -1)
    assert desc.frame_start


@pytest.mark.parametrize(
    "start,partition,frame_start", [(True, 0, True), (False, 0, False), (True, 1, False)]
)
def test_a_frame_starts_only_at_the_start_of_partition_0(
    start: bool, partition: int, frame_start: bool
) -> None:
    desc = parse(descriptor(start=start, partition=partition, non_reference=True) + b"\x00")
    assert (desc.start, desc.partition, desc.non_reference, desc.frame_start) == (
        start,
        partition,
        True,
        frame_start,
    )


def test_the_tid_takes_all_four_values() -> None:
    for tid in range(4):
        assert parse(descriptor(tid=tid, tl0=1) + b"\x00").tid == tid


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\x90",  # X set, no extension byte
        b"\x90\x80",  # I set, no PictureID
        b"\x90\x80\x81",  # M set, one byte of a 15-bit PictureID
        b"\x90\x40",  # L set, no TL0PICIDX
        b"\x90\x20",  # T set, no TID byte
        b"\x90\x10",  # K set, no KEYIDX byte
    ],
)
def test_a_truncated_descriptor_is_refused(head: bytes) -> None:
    with pytest.raises(Vp8DescriptorError):
        parse(head)


def test_keyframe_start_reads_the_p_bit_after_the_descriptor() -> None:
    head = descriptor(picture_id=5, tl0=0, tid=0)
    key, delta = head + b"\x10", head + b"\x11"
    assert is_keyframe_start(key, parse(key))
    assert not is_keyframe_start(delta, parse(delta))
    later = descriptor(start=False, picture_id=5) + b"\x10"  # a keyframe's second packet
    assert not is_keyframe_start(later, parse(later))
    assert not is_keyframe_start(head, parse(head))  # nothing after the descriptor


def test_aiortc_packetized_frames_read_as_the_relay_expects() -> None:
    key = bytes([0x10]) + bytes(3000)  # frame tag bit 0 clear: a keyframe
    payloads = Vp8Encoder._packetize(key, 300)
    descs = [parse(p) for p in payloads]
    assert [d.frame_start for d in descs] == [True] + [False] * (len(payloads) - 1)
    assert all(d.picture_id == 300 and d.tid == -1 for d in descs)
    assert is_keyframe_start(payloads[0], descs[0])


@pytest.mark.parametrize(
    "bits,value,expect", [(15, 0x8001, 0x0001), (15, -1, 0x7FFF), (7, 130, 2), (7, -1, 127)]
)
def test_picture_id_rewrite_changes_only_that_field(bits: int, value: int, expect: int) -> None:
    head = descriptor(picture_id=0x1234 if bits == 15 else 0x33, long_id=bits == 15, tl0=9, tid=1, sync=True)
    payload = head + b"\x11rest of frame"
    desc = parse(payload)
    out = with_picture_id(payload, desc.picture_id_at, desc.picture_id_bits, value)
    again = parse(out)
    assert again.picture_id == expect and again.picture_id_bits == bits
    assert (again.tl0picidx, again.tid, again.layer_sync, again.size) == (9, 1, True, desc.size)
    assert out[desc.size :] == payload[desc.size :]


def test_picture_id_rewrite_needs_a_width() -> None:
    with pytest.raises(ValueError):
        with_picture_id(b"\x10\x00", 1, 0, 3)
