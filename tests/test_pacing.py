"""The group-commit pace of the auction's leaders and senders (liveshow/auction/pacing.py)."""

from __future__ import annotations

import pytest

from liveshow.auction.pacing import pace


@pytest.mark.parametrize(
    ("last_start", "now", "every", "wait"),
    [
        (float("-inf"), 0.0, 0.005, 0.0),  # nothing ran yet: at once
        (0.0, 10.0, 0.005, 0.0),  # a quiet show: long past the interval
        (0.0, 0.005, 0.005, 0.0),  # exactly one interval later
        (0.0, 0.002, 0.005, 0.003),  # busy: waits for the rest of the interval
        (0.0, 0.0, 0.005, 0.005),  # right after a start: a whole interval
        (1.0, 0.5, 0.005, 0.505),  # a clock reading before the last start still waits it out
        (0.0, 0.001, 0.0, 0.0),  # no pacing
    ],
)
def test_pace(last_start: float, now: float, every: float, wait: float) -> None:
    assert pace(last_start, now, every) == pytest.approx(wait)
