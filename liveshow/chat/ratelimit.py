"""Per-user rate limits: a sliding window (N messages per T seconds) plus slow mode (one per S seconds).

Limits are kept per process: a user's sockets normally share one process (one tab, one socket), and the
cost of a user who opens sockets on two processes is at most twice the limit.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from liveshow.errors import RateLimited


class SlidingWindow:
    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits: dict[object, deque[float]] = {}
        # The last accepted hit, kept apart because slow mode may be longer than the window.
        self._last: dict[object, float] = {}

    def check(self, key: object, slow_mode_seconds: float = 0.0) -> None:
        """Count one hit for key, or raise RateLimited (the hit is then not counted)."""
        now = self.clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        last = self._last.get(key)
        if slow_mode_seconds > 0 and last is not None and now - last < slow_mode_seconds:
            wait = slow_mode_seconds - (now - last)
            raise RateLimited(
                f"Slow mode is on: one message every {slow_mode_seconds:g} s; wait {wait:.0f} s.",
                retry_after=round(wait, 1),
            )
        if len(hits) >= self.limit:
            wait = hits[0] + self.window - now
            raise RateLimited(
                f"Too many messages: at most {self.limit} in {self.window:g} s; wait {wait:.0f} s.",
                retry_after=round(wait, 1),
            )
        hits.append(now)
        self._last[key] = now

    def forget_idle(self) -> None:
        """Drop keys with no hit in the window, so the table does not grow with every visitor."""
        cutoff = self.clock() - max(self.window, 600.0)
        for key in [k for k, last in self._last.items() if last <= cutoff]:
            self._hits.pop(key, None)
            del self._last[key]
