"""Whether this process takes one more viewer: a pure policy over measured samples (time injected).

A relay process degrades everyone at once when it runs out of CPU: the publisher's packets wait
behind viewer handshakes and fan-out, and the whole show stutters. So the process refuses a *new*
viewer (503 + Retry-After) while it is near its limits, and never touches the publisher or the viewers
already watching. Three limits, each off when 0:

* ``max_viewers``: viewers (joined or joining) on the process; exact, no hysteresis (one leaving
  makes room for one, and nothing oscillates);
* ``cpu_ceiling``: the process's own CPU, as a fraction of one core (smoothed by the meter);
* ``lag_ceiling_s``: the event loop's smoothed lag, which also catches a process starved of CPU by
  its neighbours (its own CPU then stays low while everything it does runs late).

CPU and lag are noisy, so they have hysteresis: once over a ceiling, the process refuses until every
measure is back under ``resume_ratio`` of its ceiling *and* has stayed there for ``hold_s``, so a
process hovering at the ceiling does not flap between taking a burst and refusing.
"""

from __future__ import annotations

import dataclasses
import math

OK = "ok"
VIEWERS = "viewers"
CPU = "cpu"
LOOP_LAG = "loop_lag"


@dataclasses.dataclass(frozen=True)
class HeadroomLimits:
    max_viewers: int = 0
    cpu_ceiling: float = 0.0
    lag_ceiling_s: float = 0.0
    resume_ratio: float = 0.8
    hold_s: float = 3.0
    # A full process stays full until viewers leave, which takes longer than a CPU spike to pass.
    full_retry_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_viewers < 0 or self.cpu_ceiling < 0 or self.lag_ceiling_s < 0:
            raise ValueError("headroom limits must be >= 0 (0 turns one off)")
        if not 0 < self.resume_ratio <= 1:
            raise ValueError("resume_ratio must be in (0, 1]")
        if self.hold_s < 0 or self.full_retry_s <= 0:
            raise ValueError("hold_s must be >= 0 and full_retry_s > 0")


@dataclasses.dataclass(frozen=True)
class Sample:
    """What the process measures: viewers now, smoothed CPU (cores) and loop lag (seconds), at ``at``."""

    viewers: int
    cpu: float
    lag_s: float
    at: float


@dataclasses.dataclass(frozen=True)
class Verdict:
    admit: bool
    reason: str = OK
    retry_after_s: int = 0
    # When CPU or lag was last over its ceiling (None: not since the process started taking viewers).
    over_at: float | None = None


ADMIT = Verdict(admit=True)


def _over(limits: HeadroomLimits, sample: Sample, ratio: float) -> str | None:
    """The first of CPU or loop lag at or over ``ratio`` of its ceiling, or None."""
    if limits.cpu_ceiling > 0 and sample.cpu >= limits.cpu_ceiling * ratio:
        return CPU
    if limits.lag_ceiling_s > 0 and sample.lag_s >= limits.lag_ceiling_s * ratio:
        return LOOP_LAG
    return None


def _retry(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def decide(limits: HeadroomLimits, previous: Verdict, sample: Sample) -> Verdict:
    """Admit or refuse one more viewer, given the verdict before this one (its hysteresis state)."""
    over = _over(limits, sample, 1.0)
    if over is not None:
        return Verdict(False, over, _retry(limits.hold_s), over_at=sample.at)
    if previous.over_at is not None:
        # Refusing for CPU or lag: resume only well under the ceilings and after a quiet hold.
        still = _over(limits, sample, limits.resume_ratio)
        quiet_for = sample.at - previous.over_at
        if still is not None:
            return Verdict(False, still, _retry(limits.hold_s), over_at=sample.at)
        if quiet_for < limits.hold_s:
            return Verdict(False, previous.reason, _retry(limits.hold_s - quiet_for), previous.over_at)
    if limits.max_viewers > 0 and sample.viewers >= limits.max_viewers:
        return Verdict(False, VIEWERS, _retry(limits.full_retry_s))
    return ADMIT


def smooth(previous: float, value: float, dt: float, tau: float) -> float:
    """Exponentially weighted moving average with time constant ``tau`` over a step of ``dt`` seconds
    (uneven sampling intervals weigh what they cover)."""
    if tau <= 0 or dt >= 50 * tau:
        return value
    if dt <= 0:
        return previous
    alpha = 1.0 - math.exp(-dt / tau)
    return previous + alpha * (value - previous)
