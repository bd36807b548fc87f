"""bench/lossy.py's pure parts: the drop pattern and the VP8 keyframe test the viewer resyncs on."""

from __future__ import annotations

import pytest

from bench.lossy import DropPattern, vp8_keyframe_start


def test_the_drop_pattern_drops_one_in_each_block() -> None:
    pattern = DropPattern(0.05, seed=5)
    drops = [pattern.drop() for _ in range(2000)]
    assert sum(drops) == 100
    assert all(sum(drops[i : i + 20]) == 1 for i in range(0, 2000, 20))
    assert not any(DropPattern(0.0, seed=1).drop() for _ in range(100))
    with pytest.raises(ValueError):
        DropPattern(1.0, seed=1)


def test_a_keyframe_start_is_told_from_the_descriptor_and_payload_header() -> None:
    # no extension: S=1, PID=0, then the payload header (P bit 0: keyframe)
    assert vp8_keyframe_start(bytes([0x10, 0x00]))
    assert not vp8_keyframe_start(bytes([0x10, 0x01]))  # P=1: an inter frame
    assert not vp8_keyframe_start(bytes([0x00, 0x00]))  # not the start of a partition
    assert not vp8_keyframe_start(bytes([0x11, 0x00]))  # partition 1
    # X with I (15-bit picture id), L (TL0PICIDX), T (TID): Chromium's L1T3 packets
    assert vp8_keyframe_start(bytes([0x90, 0xE0, 0x80 | 0x12, 0x34, 0x07, 0x20, 0x00]))
    assert not vp8_keyframe_start(bytes([0x90, 0xE0, 0x80 | 0x12, 0x34, 0x07, 0x20, 0x01]))
    # X with I (7-bit picture id) only
    assert vp8_keyframe_start(bytes([0x90, 0x80, 0x12, 0x00]))
    assert not vp8_keyframe_start(bytes([0x90, 0x80, 0x12]))  # cut short
