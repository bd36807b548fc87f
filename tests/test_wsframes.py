"""The frame helpers (RFC 6455 §5.2): every length form, and a header that has not all come yet."""

from __future__ import annotations

import pytest

from liveshow.chat.wsframes import frame_head, text_frame


@pytest.mark.parametrize(("size", "head"), [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (70000, 10)])
def test_a_frame_reads_back_its_length_and_header(size: int, head: int) -> None:
    frame = text_frame(b"x" * size)
    assert frame[0] == 0x81 and len(frame) == head + size
    assert frame_head(frame, 0) == (size, head)
    # at an offset, as in a buffer holding several frames
    assert frame_head(b"\x81\x00" + frame, 2) == (size, head)
    # one byte short of the header: not yet
    assert frame_head(frame[: head - 1], 0) is None


def test_a_client_frames_mask_bit_is_not_part_of_the_length() -> None:
    assert frame_head(bytes((0x81, 0x80 | 5)), 0) == (5, 2)
    assert frame_head(bytes((0x81, 0x80 | 126, 0x01, 0x00)), 0) == (256, 4)
    assert frame_head(b"", 0) is None
