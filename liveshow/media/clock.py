"""The show clock: frame timestamps stay continuous across republishes and agree between audio and video."""

from __future__ import annotations

import time


class ShowClock:
    def __init__(self) -> None:
        self.origin: float | None = None  # monotonic time the show first went live

    def start(self) -> None:
        if self.origin is None:
            self.origin = time.monotonic()

    def now(self, rate: int) -> int:
        """The show time now, in units of ``rate`` per second."""
        self.start()
        assert self.origin is not None
        return int((time.monotonic() - self.origin) * rate)


class StreamTimeline:
    """Maps one publish session's stream timestamps (already unwrapped, from 0) onto the show clock."""

    def __init__(self, clock: ShowClock, rate: int) -> None:
        self.clock = clock
        self.rate = rate
        self.base: int | None = None
        self.last = -1

    def pts(self, stream_ts: int) -> int:
        if self.base is None:
            self.base = self.clock.now(self.rate)
        pts = self.base + stream_ts
        # Never go backwards: a republish starts from "now", which is after every earlier frame.
        if pts <= self.last:
            pts = self.last + 1
        self.last = pts
        return pts
