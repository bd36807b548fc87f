"""Per-viewer temporal layer choice: how many of a VP8 stream's temporal layers one viewer's link carries.

The studio publishes VP8 with three temporal layers (L1T3: TID 0 at a quarter of the frame rate, TID 1
adding a quarter, TID 2 the other half). A viewer held at layer L is sent only frames with TID <= L:
fewer frames per second, every one decodable, never a frozen picture. The relay asks this policy for
each viewer's *target* layer; it switches down at once and up only where the stream allows it (a
keyframe, or a layer-sync frame: see ``relay.ViewerOutput``).

The policy steps down one layer when the viewer's receiver reports show loss (RTCP fraction lost) or
its socket holds a backlog, at most once per ``DOWN_HOLD`` so the effect of one step shows before the
next; it steps up one layer once the link has been clean for ``up_hold``, which doubles each time a
step up is followed by a step down within that hold (a link that cannot carry the layer is not probed
again and again), up to ``MAX_UP_HOLD``, and halves back after a step up that held. Never below the base
layer, never above the top. Each viewer has its own policy: nothing here is shared.

Pure: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

TOP_LAYER = 2  # L1T3
LOSS_DOWN = 0.10  # a report with more loss than this steps down (random loss under it is RTX's job)
LOSS_CLEAN = 0.02  # a report at or under this counts as clean
BACKLOG_DOWN = 64 * 1024  # bytes unsent in the viewer's socket that step down (MAX_BUFFERED drops at 256 KiB)
DOWN_HOLD = 1.0  # seconds between two steps down
UP_HOLD = 3.0  # seconds of clean link before a step up
MAX_UP_HOLD = 24.0


@dataclass(slots=True)
class LayerCounts:
    """What the process's relays did with temporal layers (exported as Prometheus counters)."""

    dropped: int = 0  # packets not sent to a viewer because their layer was above its own
    down: int = 0  # switches down (a viewer's layer lowered)
    up: int = 0  # switches up


class LayerPolicy:
    """One viewer's target layer."""

    __slots__ = ("_clean_since", "_last_down", "_last_up", "_top", "target", "up_hold")

    def __init__(self, now: float, top: int = TOP_LAYER) -> None:
        self._top = top
        self.target = top
        self.up_hold = UP_HOLD
        self._clean_since = now
        self._last_down = -1e18
        self._last_up = -1e18

    def report(self, now: float, fraction_lost: float) -> int:
        """A receiver report from the viewer (loss in 0..1 since its last one); returns the target."""
        if fraction_lost > LOSS_DOWN:
            return self._down(now)
        if fraction_lost > LOSS_CLEAN:
            self._clean_since = now  # not bad enough to step down, not clean enough to step up
            return self.target
        return self._maybe_up(now)

    def backlog(self, now: float, buffered: int) -> int:
        """The viewer's socket holds ``buffered`` bytes unsent; returns the target."""
        if buffered > BACKLOG_DOWN:
            return self._down(now)
        return self.target

    def _down(self, now: float) -> int:
        self._clean_since = now
        if self.target == 0 or now - self._last_down < DOWN_HOLD:
            return self.target
        if self._last_up > self._last_down and now - self._last_up < self.up_hold:
            self.up_hold = min(MAX_UP_HOLD, self.up_hold * 2)  # the last step up did not hold
        self.target -= 1
        self._last_down = now
        return self.target

    def _maybe_up(self, now: float) -> int:
        if self.target >= self._top or now - self._clean_since < self.up_hold:
            return self.target
        if self._last_up > self._last_down and now - self._last_up >= self.up_hold:
            self.up_hold = max(UP_HOLD, self.up_hold / 2)  # the last step up held
        self.target += 1
        self._last_up = now
        self._clean_since = now  # the next step up waits for a clean hold at this layer
        return self.target
