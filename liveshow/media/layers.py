"""Per-viewer temporal layer choice: how many of a VP8 stream's temporal layers one viewer's link carries.

The studio publishes VP8 with three temporal layers (L1T3: TID 0 at a quarter of the frame rate, TID 1
adding a quarter, TID 2 the other half). A viewer held at layer L is sent only frames with TID <= L:
fewer frames per second, every one decodable, never a frozen picture. The relay asks this policy for
each viewer's *target* layer; it switches down at once and up only where the stream allows it (a
keyframe, or a layer-sync frame: see ``relay.ViewerOutput``).

The policy steps down one layer, at most once per ``DOWN_HOLD`` (a receiver report covers up to 1.5 s,
aiortc and browsers send one every 0.5 to 1.5 s, and a link's queue delivers what was sent before the
step, so a report sooner after a step may still carry the loss of the layer left), when:
- the viewer's receiver says its link's queue keeps growing: estimates (REMB, from the delay its
  packets gain) under ``REMB_DOWN`` of what it is sent, close together for ``OVERUSE_HOLD``. This comes
  before any loss: a queue fills for a while before it drops;
- its first-time NACKs are heavy (``FAST_LOSS``), or, while its estimate is low, pass ``LOSS_DOWN``:
  a round trip after the loss;
- its receiver reports show loss (RTCP fraction lost, ``LOSS_DOWN``): a second or so after it;
- its socket holds a backlog.

Loss is congestion only when a step down lowers it. The reports a full ``DOWN_HOLD`` after a step down
for loss judge that step: when ``PERSIST_REPORTS`` of them in a row show that the loss above the
viewer's random loss (its *floor*) did not fall to under half (and did not rise: the step's effect not
seen yet, or a storm of retransmissions), the link loses packets whatever is sent (a radio link, 10 %
random loss): that loss, up to ``MAX_FLOOR``, becomes the floor, the step is undone (retransmissions
keep the picture whole there) and only loss above the floor counts from then on. A clean report (at most
``LOSS_CLEAN``) clears the floor.

Steps up are probes of the link, and a probe the link cannot carry costs a burst of loss: each layer has
its own clean hold before a step up to it (``UP_HOLD``); when a layer fails (the viewer steps down from
it before it has been clean there for ``FAIL_WINDOW``, whether it stepped up to it or started there),
its hold becomes ``FAILED_HOLD`` and doubles with each further failure up to ``MAX_UP_HOLD``; a layer
clean for ``FAIL_WINDOW`` has held: its hold halves back towards ``UP_HOLD``. A failure of the top layer
does not make a lower layer wait longer (one hold for all layers did: the lower layer's success halved
it back and the top was probed again three seconds later). Never below the base layer, never above the
top. Each viewer has its own policy: nothing here is shared.

Pure: time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

TOP_LAYER = 2  # L1T3
LOSS_DOWN = 0.10  # loss above the floor by more than this steps down (random loss under it is RTX's job)
LOSS_CLEAN = 0.02  # loss above the floor by at most this counts as clean
BACKLOG_DOWN = 64 * 1024  # bytes unsent in the viewer's socket that step down (MAX_BUFFERED drops at 256 KiB)
DOWN_HOLD = 2.0  # seconds between two steps down: a report's span (1.5 s) and a link queue (0.25 s)
UP_HOLD = 3.0  # seconds of clean link before a step up to a layer that has not failed
FAILED_HOLD = 15.0  # ... to a layer that failed once
MAX_UP_HOLD = 60.0
FAIL_WINDOW = 5.0  # a step down this soon after reaching a layer is that layer's failure
PERSISTS = 0.5  # loss that a step down did not lower to under this share of itself is not congestion
PERSIST_REPORTS = 2  # ...when this many reports in a row say so (one may still carry a queue's drops)
MAX_FLOOR = 0.2  # ...unless it is more than this: a link losing that much is not ridden out at the top
# NACKs say within a round trip what a receiver report says a second later: a share of the packets
# sent over a window NACKed for the first time that is above the floor by more than FAST_LOSS steps
# down at once. Only heavy loss: a drop-tail queue that overflows loses the stream's excess over the
# link (a third of a 900 kbit/s stream on a 600 kbit/s link), random loss stays far under it, and
# FAST_PACKETS make the share a fair count (10 % random loss exceeds 25 % of 40 packets once in ~500).
FAST_LOSS = 0.25
FAST_PACKETS = 40
FAST_WINDOW = 1.0  # seconds: a window that took longer than this to fill starts over
# A viewer's receiver estimates its link from the delay its packets gain on the way (REMB: GCC's delay
# gradient; the relay stamps abs-send-time for it). A link's queue that starts to fill shows there
# seconds before it drops anything, and the estimate falls to 85 % of what still arrives. An estimate
# under REMB_DOWN of what the viewer is sent says its link is narrower than the stream (a receiver that
# is merely busy reads a stall as delay as well, so the estimate alone does not step down): while it
# says so, first-time NACKs over more than LOSS_DOWN of REMB_PACKETS step down at once, the queue's
# first overflow rather than the heavy loss that comes after.
REMB_DOWN = 0.75
REMB_PACKETS = 20
REMB_VALID = 1.0  # seconds an estimate stands for (receivers send one every 0.5 s, more when overusing)
MIN_JUDGED_BPS = 64_000  # a viewer sent less than this is not judged by its estimate (audio-only, idle)
# A receiver that finds its packets' delay growing (overusing) sends a new estimate with nearly every
# packet instead of one per half second: low estimates at most OVERUSE_GAP apart for OVERUSE_HOLD say
# the queue is still growing, and that steps down before it overflows. A receiver that was only stalled
# (a busy machine) sends a few at once and then its half-second ones.
OVERUSE_GAP = 0.1
OVERUSE_HOLD = 0.3


@dataclass(slots=True)
class LayerCounts:
    """What the process's relays did with temporal layers (exported as Prometheus counters)."""

    dropped: int = 0  # packets not sent to a viewer because their layer was above its own
    down: int = 0  # switches down (a viewer's layer lowered)
    up: int = 0  # switches up


class LayerPolicy:
    """One viewer's target layer."""

    __slots__ = (
        "_clean_since",
        "_down_loss",
        "_held",
        "_last_down",
        "_last_estimate",
        "_nack_lost",
        "_nack_sent",
        "_nack_start",
        "_narrow_until",
        "_overuse_since",
        "_persisted",
        "_reached",
        "_top",
        "_undo_hold",
        "floor",
        "holds",
        "target",
    )

    def __init__(self, now: float, top: int = TOP_LAYER) -> None:
        self._top = top
        self.target = top
        self.holds = [UP_HOLD] * (top + 1)  # clean seconds before a step up to each layer
        self.floor = 0.0  # the viewer's random loss: loss that stepping down did not lower
        self._reached = now  # when the viewer reached its layer (a start is a probe of the top)
        self._held = False  # whether it has been clean there for FAIL_WINDOW
        self._clean_since = now
        self._last_down = -1e18
        self._down_loss = -1.0  # the loss above the floor that made the last step down; -1: judged
        self._undo_hold = UP_HOLD  # the left layer's hold before that step down
        self._persisted = 0  # reports since then whose loss that step did not lower
        self._nack_start = -1e18  # the NACK window: when it began, packets sent by then, first NACKs since
        self._nack_sent = 0
        self._nack_lost = 0
        self._narrow_until = -1e18  # until when the receiver's estimate says its link is too narrow
        self._overuse_since = -1.0  # when the current run of close low estimates began; -1: none
        self._last_estimate = -1e18

    @property
    def last_down(self) -> float:
        """When the target last stepped down."""
        return self._last_down

    @property
    def up_hold(self) -> float:
        """Clean seconds the next step up waits for."""
        return self.holds[min(self.target + 1, self._top)]

    def report(self, now: float, fraction_lost: float) -> int:
        """A receiver report from the viewer (loss in 0..1 since its last one); returns the target."""
        self._note_held(now)
        excess = fraction_lost - self.floor
        if self._down_loss >= 0 and now - self._last_down >= DOWN_HOLD:
            stepped_for = self._down_loss
            if (
                LOSS_CLEAN < excess <= stepped_for
                and excess >= PERSISTS * stepped_for
                and fraction_lost <= MAX_FLOOR
            ):
                self._persisted += 1
                self._clean_since = now
                if self._persisted < PERSIST_REPORTS:
                    return self.target  # not judged yet: neither down nor up
                # The step down did not lower the loss: not congestion. Undo it, failure and all.
                self._down_loss = -1.0
                self.floor = fraction_lost
                self.holds[self.target + 1] = self._undo_hold
                self._up(now)
                return self.target
            self._down_loss = -1.0  # the step lowered the loss (or it rose): congestion
        if fraction_lost <= LOSS_CLEAN:
            self.floor = 0.0
        if excess > LOSS_DOWN:
            if self._down(now):
                self._down_loss = excess
                self._persisted = 0
            return self.target
        if excess > LOSS_CLEAN:
            self._clean_since = now  # not bad enough to step down, not clean enough to step up
            return self.target
        if self.target < self._top and now - self._clean_since >= self.holds[self.target + 1]:
            self._up(now)
        return self.target

    def estimate(self, now: float, estimate_bps: float, sent_bps: float) -> int:
        """The viewer's receiver estimates its link at ``estimate_bps``; it was sent ``sent_bps`` (video
        payload, as the estimate counts) over about the last second. Returns the target."""
        close = now - self._last_estimate <= OVERUSE_GAP
        self._last_estimate = now
        if sent_bps < MIN_JUDGED_BPS or estimate_bps >= REMB_DOWN * sent_bps:
            self._narrow_until = -1e18
            self._overuse_since = -1.0
            return self.target
        self._narrow_until = now + REMB_VALID
        if not close or self._overuse_since < 0:
            self._overuse_since = now
        elif now - self._overuse_since >= OVERUSE_HOLD:
            self._note_held(now)
            if self._down(now):
                self._down_loss = -1.0  # delay, not loss: nothing for the reports to judge
                self._overuse_since = now  # (a step refused for DOWN_HOLD is taken once it passes)
        return self.target

    def nacked(self, now: float, lost: int, sent: int) -> int:
        """The viewer NACKed ``lost`` packets not NACKed before; ``sent``: the packets sent to it so far
        (a running count). Returns the target."""
        if now - self._nack_start > FAST_WINDOW or sent < self._nack_sent:
            self._nack_start, self._nack_sent, self._nack_lost = now, sent, 0
        self._nack_lost += lost
        span = sent - self._nack_sent
        narrow = now < self._narrow_until
        if span < (REMB_PACKETS if narrow else FAST_PACKETS):
            return self.target
        excess = self._nack_lost / span - self.floor
        self._nack_start, self._nack_sent, self._nack_lost = now, sent, 0
        if excess > (LOSS_DOWN if narrow else FAST_LOSS):
            self._note_held(now)
            if self._down(now):
                self._down_loss = excess  # judged by the reports after it, as a report's step is
                self._persisted = 0
        return self.target

    def backlog(self, now: float, buffered: int) -> int:
        """The viewer's socket holds ``buffered`` bytes unsent; returns the target."""
        self._note_held(now)
        if buffered > BACKLOG_DOWN and self._down(now):
            self._down_loss = -1.0  # a backlog is congestion whatever the loss
        return self.target

    def _note_held(self, now: float) -> None:
        if not self._held and now - self._clean_since >= FAIL_WINDOW:
            self._held = True  # the link carries this layer: its next probe need not wait as long
            self.holds[self.target] = max(UP_HOLD, self.holds[self.target] / 2)

    def _down(self, now: float) -> bool:
        self._clean_since = now
        if self.target == 0 or now - self._last_down < DOWN_HOLD:
            return False
        layer = self.target
        self._undo_hold = self.holds[layer]
        if not self._held:
            # This layer failed: the next probe of it waits longer.
            self.holds[layer] = min(MAX_UP_HOLD, max(FAILED_HOLD, self.holds[layer] * 2))
        self.target -= 1
        self._last_down = now
        self._reach(now)
        return True

    def _up(self, now: float) -> None:
        self.target += 1
        self._reach(now)
        self._clean_since = now  # the next step up waits for a clean hold at this layer

    def _reach(self, now: float) -> None:
        self._reached = now
        self._held = False
