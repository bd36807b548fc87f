"""What a viewer saw over a window, from the times its video frames were decoded (pure, no I/O): the
frame rate and the longest freeze, counting the gaps at the window's edges, so a viewer that stopped
decoding before the window ended shows that whole stretch as frozen."""

from __future__ import annotations

import dataclasses
import itertools


@dataclasses.dataclass(frozen=True)
class Playback:
    frames: int
    seconds: float
    longest_freeze: float  # seconds without a new frame

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def playback(times: list[float], start: float, end: float) -> Playback:
    """Frames decoded in [start, end) and the longest gap between consecutive ones, the window's
    edges included (the last frame before ``start`` is still on screen at ``start``)."""
    if end <= start:
        raise ValueError(f"an empty window: {start} to {end}")
    inside = sorted(t for t in times if start <= t < end)
    before = [t for t in times if t < start]
    edges = [max(before) if before else start, *inside, end]
    freeze = max(b - a for a, b in itertools.pairwise(edges))
    return Playback(len(inside), end - start, freeze)
