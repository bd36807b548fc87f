"""LL-HLS pure parts: the window and its blocking-reload rule, the playlist, where parts and segments
are cut, the fMP4 boxes (decoded back with PyAV), and the codec order a publisher's offer asks for."""

from __future__ import annotations

import io
from dataclasses import replace
from functools import cache

import av
import pytest

from liveshow.hls.assembler import (
    KEYFRAME_LEAD,
    PART_CUT,
    SEGMENT_TARGET,
    Assembler,
)
from liveshow.hls.boxes import avcc_sample
from liveshow.hls.playlist import render
from liveshow.hls.window import Part, Reload, Window
from liveshow.media.frames import EncodedFrame
from liveshow.media.peers import capabilities, in_offer_order
from liveshow.media.synthetic import audio_frames, interleaved, video_frames


def part(duration: float = 0.2, independent: bool = False, data: bytes = b"x") -> Part:
    return Part(duration, independent, data)


def filled(segments: int, parts: int = 3, max_segments: int = 8, part_segments: int = 3) -> Window:
    """A window with ``segments`` closed segments of ``parts`` parts, and an open one with one part."""
    window = Window(max_segments=max_segments, part_segments=part_segments)
    window.add_init(0, b"init")
    for msn in range(segments + 1):
        window.open_segment(0, False, 1_000 * msn)
        for index in range(parts if msn < segments else 1):
            window.add_part(part(independent=index == 0, data=f"{msn}.{index}".encode()))
        if msn < segments:
            window.close_segment()
    return window


# ---------------------------------------------------------------- window


def test_segments_are_numbered_and_hold_their_parts_bytes() -> None:
    window = filled(2)
    assert [s.msn for s in window.segments] == [0, 1, 2]
    assert window.segment_data(0) == b"0.00.10.2"
    assert window.segment_data(2) is None  # still open
    assert window.part_data(1, 2) == b"1.2"
    assert window.part_data(2, 0) == b"2.0"
    assert window.part_data(2, 1) is None
    assert window.last_part() == (2, 0)
    assert window.segments[0].duration == pytest.approx(0.6)


def test_the_window_keeps_max_segments_and_parts_only_near_the_edge() -> None:
    window = filled(10, max_segments=4, part_segments=2)
    assert window.first_msn == 6
    assert [s.msn for s in window.segments] == [6, 7, 8, 9, 10]
    assert window.segment(5) is None and window.segment_data(5) is None
    assert window.part_data(7, 0) is None  # listed no more: its bytes live on in the segment
    assert window.segment_data(7) == b"7.07.17.2"
    assert window.part_data(8, 0) == b"8.0"
    assert window.part_data(9, 2) == b"9.2"


def test_unused_init_segments_go_and_discontinuities_are_counted_as_they_leave() -> None:
    window = Window(max_segments=2)
    window.add_init(0, b"a")
    window.open_segment(0, False, 0)
    window.add_part(part())
    window.close_segment()
    window.add_init(1, b"b")
    for _ in range(3):
        window.open_segment(1, window.segments[-1].init_id != 1, 0)
        window.add_part(part())
        window.close_segment()
    assert [s.discontinuity for s in window.segments] == [False, False]
    assert window.discontinuity_sequence == 1
    assert window.inits == {1: b"b"}


# ---------------------------------------------------------------- blocking reload


def test_reload_without_parameters_is_answered_now() -> None:
    assert Window().reload(None, None) is Reload.READY
    assert filled(1).reload(None, None) is Reload.READY


@pytest.mark.parametrize("msn, index", [(None, 0), (-1, None), (1, -1)])
def test_malformed_reloads_are_refused(msn: int | None, index: int | None) -> None:
    assert filled(1).reload(msn, index) is Reload.BAD


def test_reload_waits_for_the_part_asked_and_answers_once_it_is_there() -> None:
    window = filled(2)  # last part (2, 0)
    assert window.reload(2, 0) is Reload.READY
    assert window.reload(1, 7) is Reload.READY  # past segment 1's end: (2, 0) is "later"
    assert window.reload(2, 1) is Reload.WAIT
    assert window.reload(3, 0) is Reload.WAIT
    window.add_part(part())
    assert window.reload(2, 1) is Reload.READY
    assert window.reload(0, 0) is Reload.READY  # long gone: the current playlist is later


def test_reload_by_segment_waits_for_the_segment_to_complete() -> None:
    window = filled(2)
    assert window.reload(1, None) is Reload.READY
    assert window.reload(2, None) is Reload.WAIT
    window.close_segment()
    assert window.reload(2, None) is Reload.READY


def test_reload_too_far_ahead_is_refused() -> None:
    window = filled(2)  # open segment 2, last part index 0
    assert window.reload(4, 0) is Reload.WAIT
    assert window.reload(5, 0) is Reload.BAD
    assert window.reload(2, 3) is Reload.WAIT
    assert window.reload(2, 4) is Reload.BAD


def test_before_the_first_part_a_reload_waits_and_after_the_end_answers() -> None:
    window = Window()
    assert window.reload(0, 0) is Reload.WAIT
    assert window.reload(0, None) is Reload.WAIT
    assert window.reload(3, 0) is Reload.BAD
    window.ended = True
    assert window.reload(0, 0) is Reload.READY


def test_part_requests_wait_for_the_next_part_only() -> None:
    window = filled(2)
    assert window.part_state(2, 0) is Reload.READY
    assert window.part_state(2, 1) is Reload.WAIT  # the preload hint
    assert window.part_state(3, 0) is Reload.WAIT
    assert window.part_state(1, 3) is Reload.BAD  # segment 1 closed with three parts
    assert window.part_state(2, 9) is Reload.BAD  # beyond the advance limit
    assert window.part_state(9, 0) is Reload.BAD
    trimmed = filled(10, max_segments=2)
    assert trimmed.part_state(1, 0) is Reload.BAD  # fell off the window
    trimmed.ended = True
    assert trimmed.part_state(10, 1) is Reload.BAD
    assert Window().part_state(0, 0) is Reload.WAIT


# ---------------------------------------------------------------- playlist


def test_the_playlist_announces_low_latency_and_lists_parts_near_the_edge() -> None:
    window = filled(4, part_segments=2)
    text = render(window, "k", 4, 0.334)
    lines = text.splitlines()
    assert lines[:7] == [
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        "#EXT-X-TARGETDURATION:4",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002",
        "#EXT-X-PART-INF:PART-TARGET=0.334",
        "#EXT-X-MEDIA-SEQUENCE:0",
        '#EXT-X-MAP:URI="k/init-0.mp4"',
    ]
    assert "#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:01.000Z" in lines
    assert [line for line in lines if line.startswith("k/")] == [f"k/{n}.m4s" for n in range(4)]
    assert lines.count("#EXTINF:0.60000,") == 4
    parts = [line for line in lines if line.startswith("#EXT-X-PART:")]
    # segments 2 and 3 (the last two complete) and the open segment 4
    assert parts[0] == '#EXT-X-PART:DURATION=0.20000,URI="k/2.0.m4s",INDEPENDENT=YES'
    assert parts[1] == '#EXT-X-PART:DURATION=0.20000,URI="k/2.1.m4s"'
    assert len(parts) == 7
    assert lines[-1] == '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="k/4.1.m4s"'
    assert "#EXT-X-DISCONTINUITY" not in text and "ENDLIST" not in text


def test_an_ended_stream_has_endlist_and_no_hint() -> None:
    window = filled(1)
    window.close_segment()
    window.ended = True
    text = render(window, "k", 4, 0.334)
    assert text.endswith("#EXT-X-ENDLIST\n")
    assert "PRELOAD-HINT" not in text


def test_a_just_closed_segment_hints_the_next_segments_first_part() -> None:
    window = filled(1)
    window.close_segment()
    assert render(window, "k", 4, 0.334).splitlines()[-1] == '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="k/2.0.m4s"'


def test_a_new_init_is_a_discontinuity_with_its_own_map() -> None:
    window = filled(1)
    window.close_segment()
    window.add_init(1, b"new")
    window.open_segment(1, True, 5_000)
    assert "#EXT-X-DISCONTINUITY" not in render(window, "k", 4, 0.334)  # nothing listed yet
    window.add_part(part(independent=True))
    lines = render(window, "k", 4, 0.334).splitlines()
    at = lines.index("#EXT-X-DISCONTINUITY")
    assert lines[at + 1] == '#EXT-X-MAP:URI="k/init-1.mp4"'
    assert lines[at + 2] == "#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:00:05.000Z"


def test_the_discontinuity_sequence_is_announced_once_one_left() -> None:
    window = Window(max_segments=1)
    for init_id in range(3):
        window.add_init(init_id, b"i")
        window.open_segment(init_id, init_id > 0, 0)
        window.add_part(part())
        window.close_segment()
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:2" in render(window, "k", 4, 0.334)


# ---------------------------------------------------------------- cutting (real H.264 and Opus)


@cache
def h264(seconds: float = 5.0, gop: int = 60, width: int = 160, height: int = 96) -> list[EncodedFrame]:
    return list(video_frames(seconds, width=width, height=height, gop=gop, start_pts=90_000))


@cache
def opus(seconds: float = 5.0) -> list[EncodedFrame]:
    return list(audio_frames(seconds, start_pts=48_000))


def run(frames: list[EncodedFrame], audio: bool = True) -> tuple[Window, Assembler, int]:
    window = Window(max_segments=100, part_segments=100)
    assembler = Assembler(window, audio)
    asked = 0
    for frame in frames:
        if frame.kind == "video":
            assembler.video(frame, frame.pts // 90)
            asked += assembler.wants_keyframe()
        else:
            assembler.audio_frame(frame)
    return window, assembler, asked


def decoded(window: Window) -> tuple[int, int]:
    """Frames PyAV decodes from the init segment and every segment: (video, audio)."""
    data = window.inits[0] + b"".join(s.data or b"" for s in window.segments)
    with av.open(io.BytesIO(data)) as container:
        video = sum(1 for _ in container.decode(video=0))
    with av.open(io.BytesIO(data)) as container:
        audio = sum(1 for _ in container.decode(audio=0)) if len(container.streams.audio) else 0
    return video, audio


def test_parts_are_200_ms_and_segments_cut_at_two_second_keyframes() -> None:
    window, assembler, _ = run(interleaved(h264(), opus()))
    assembler.finish()
    segments = window.segments
    assert [round(s.duration, 3) for s in segments] == [2.0, 2.0, 1.0]
    for segment in segments:
        assert segment.parts[0].independent
        assert not any(p.independent for p in segment.parts[1:])
        assert all(p.duration == pytest.approx(PART_CUT / 90_000) for p in segment.parts)
    assert [s.wall_ms for s in segments] == [1000, 3000, 5000]  # arrival of each first frame
    assert window.ended


def test_every_frame_decodes_from_the_segments() -> None:
    window, assembler, _ = run(interleaved(h264(), opus()))
    assembler.finish()
    assert decoded(window) == (len(h264()), len(opus()))


def test_parts_alone_decode_too() -> None:
    window, assembler, _ = run(interleaved(h264(), opus()))
    assembler.finish()
    data = window.inits[0] + b"".join(p.data for s in window.segments for p in s.parts)
    with av.open(io.BytesIO(data)) as container:
        assert sum(1 for _ in container.decode(video=0)) == len(h264())


def test_without_a_declared_audio_track_audio_is_left_out() -> None:
    window, assembler, _ = run(interleaved(h264(), opus()), audio=False)
    assembler.finish()
    assert decoded(window) == (len(h264()), 0)


def test_nothing_is_written_before_the_first_keyframe_and_it_is_asked_for() -> None:
    frames = h264()
    first_delta = next(i for i, f in enumerate(frames) if not f.keyframe)
    window, assembler, asked = run(frames[first_delta : first_delta + 10])
    assert window.segments == [] and assembler.config is None
    assert asked == 10  # each frame wishes; the relay spaces the requests out


def test_a_keyframe_is_asked_for_ahead_of_the_segment_target_and_again_until_it_comes() -> None:
    # One keyframe in ten seconds: the publisher ignores the requests.
    window, assembler, asked = run(h264(6.0, gop=1000))
    assembler.finish()
    due = (SEGMENT_TARGET - KEYFRAME_LEAD) / 90_000
    assert due == pytest.approx(1.75)
    # A forced cut at 4 s: asks at 1.75, 2.25, 2.75, 3.25 and 3.75 s into the first segment, then at
    # 1.75 s into the second (two seconds long: the show ends).
    assert asked == 5 + 1
    assert [round(s.duration, 3) for s in window.segments] == [4.0, 2.0]
    assert not window.segments[1].parts[0].independent  # cut without a keyframe


def test_keyframes_closer_than_the_minimum_segment_start_independent_parts() -> None:
    window, assembler, _ = run(h264(4.0, gop=30))  # a keyframe every second
    assembler.finish()
    assert [round(s.duration, 3) for s in window.segments] == [2.0, 2.0]
    first = window.segments[0]
    assert [p.independent for p in first.parts].count(True) == 2  # at 0 s and 1 s


def test_a_new_picture_size_starts_a_new_init_and_a_discontinuity() -> None:
    small = h264(2.0)
    large = [replace(f, pts=f.pts + 2 * 90_000) for f in h264(2.0, width=320, height=192)]
    window, assembler, _ = run(small + large)
    assembler.finish()
    assert [s.init_id for s in window.segments] == [0, 1]
    assert [s.discontinuity for s in window.segments] == [False, True]
    assert set(window.inits) == {0, 1}
    assert assembler.config is not None and (assembler.config.width, assembler.config.height) == (320, 192)


def test_vp8_is_not_muxed_and_says_so() -> None:
    vp8 = list(video_frames(0.5, codec="VP8", width=160, height=96))
    window, assembler, asked = run(vp8)
    assert assembler.unsupported == "VP8"
    assert window.segments == [] and asked == 0


def test_timestamps_never_go_back() -> None:
    frames = h264(2.0)
    shuffled = [*frames[:20], replace(frames[20], pts=frames[10].pts), *frames[21:]]
    window, assembler, _ = run(shuffled)
    assembler.finish()
    assert decoded(window)[0] == len(frames)


def test_avcc_samples_are_length_prefixed_without_delimiters() -> None:
    unit = b"\x00\x00\x00\x01\x09\xf0" + b"\x00\x00\x01\x65\xaa\xbb" + b"\x00\x00\x01\x41\xcc"
    assert avcc_sample(unit) == b"\x00\x00\x00\x03\x65\xaa\xbb" + b"\x00\x00\x00\x02\x41\xcc"


# ---------------------------------------------------------------- the publisher's codec order


def offer(*names: str) -> str:
    lines = [
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=rtpmap:111 opus/48000/2",
        "m=video 9 UDP/TLS/RTP/SAVPF",
    ]
    lines += [f"a=rtpmap:{96 + i} {name}/90000" for i, name in enumerate(names)]
    return "\r\n".join(lines) + "\r\n"


def test_the_offer_order_decides_the_video_codec() -> None:
    caps = capabilities("video", ("VP8", "H264"))

    def first(sdp: str) -> str:
        return str(in_offer_order(sdp, "video", caps)[0].mimeType)

    assert first(offer("H264", "rtx", "VP8")) == "video/H264"
    assert first(offer("VP8", "rtx", "H264")) == "video/VP8"
    assert first(offer("AV1", "VP8", "H264")) == "video/VP8"  # what we cannot forward is skipped
    assert len(in_offer_order(offer("H264"), "video", caps)) == len(caps)  # nothing dropped
    assert first("v=0\r\n") == caps[0].mimeType  # no video section: our own order
