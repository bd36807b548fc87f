"""bench/playback.py: frame rate and longest freeze over a window of decode times."""

from __future__ import annotations

import pytest

from bench.playback import playback


def test_a_steady_stream_has_its_frame_interval_as_longest_freeze() -> None:
    times = [i / 30 for i in range(300)]  # 10 s at 30 fps
    seen = playback(times, 2.0, 8.0)
    assert seen.frames == 180
    assert seen.fps == pytest.approx(30)
    assert seen.longest_freeze == pytest.approx(1 / 30)


def test_a_gap_inside_the_window_is_the_freeze() -> None:
    times = [0.1 * i for i in range(100) if not 30 <= i < 45]  # nothing from 3.0 to 4.5 s
    seen = playback(times, 1.0, 9.0)
    assert seen.longest_freeze == pytest.approx(1.6)  # 2.9 -> 4.5


def test_a_viewer_that_stopped_is_frozen_to_the_windows_end() -> None:
    seen = playback([0.0, 0.5, 1.0, 1.2], 1.0, 5.0)
    assert seen.frames == 2
    assert seen.longest_freeze == pytest.approx(3.8)


def test_the_last_frame_before_the_window_starts_it() -> None:
    seen = playback([0.0, 3.0], 2.0, 4.0)
    assert seen.longest_freeze == pytest.approx(3.0)  # frozen from 0.0 until 3.0
    nothing = playback([], 2.0, 4.0)
    assert (nothing.frames, nothing.longest_freeze, nothing.fps) == (0, 2.0, 0.0)


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ValueError):
        playback([1.0], 3.0, 3.0)
