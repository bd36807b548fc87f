"""What the benchmarks count and when a step held: pure functions, no I/O (tests/test_bench_tally.py).

A benchmark's figures are only worth the counts beside them: a failure must never be folded into a
figure (an error frame counted as a decision, a viewer with no frames adding frames but no expected
frames), and a step is reported as held only when every count that could hide a failure is zero.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The rules' own refusals: the writer decided the bid and said no. Anything else in reply to a bid
# (writer_unavailable, unavailable, rate_limited, a timeout, a dropped connection) is not a decision.
DECISION_REFUSALS = frozenset(
    {"bid_too_low", "lot_closed", "not_on_screen", "sold_out", "over_buyer_limit", "self_bidding"}
)
ACCEPTED = "accepted"


def pct(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank below), NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# ------------------------------------------------------------------ bids


def ws_outcome(frame: Mapping[str, object]) -> str:
    """A room reply to a bid frame: ``accepted``, ``refused:<code>`` (a decision) or ``error:<code>``."""
    kind = frame.get("type")
    if kind == "bid.result":
        return ACCEPTED
    code = str(frame.get("code") or kind or "unknown")
    return f"refused:{code}" if kind == "error" and code in DECISION_REFUSALS else f"error:{code}"


def http_outcome(status: int, body: Mapping[str, object]) -> str:
    """An HTTP answer to a bid: 200 is accepted; a rules refusal names its code; the rest are errors."""
    if status == 200:
        return ACCEPTED
    code = str(body.get("error") or "")
    if 400 <= status < 500 and code in DECISION_REFUSALS:
        return f"refused:{code}"
    return f"error:http_{status}" + (f"_{code}" if code else "")


def is_decision(outcome: str) -> bool:
    return outcome == ACCEPTED or outcome.startswith("refused:")


@dataclass(frozen=True)
class Sighting:
    """How many of a client process's sockets received an accepted bid, and when the last one did."""

    sockets: int
    last_at: float


def seen_by_everyone(
    accepted: Iterable[int], parts: Sequence[tuple[int, Mapping[int, Sighting]]]
) -> tuple[dict[int, float], int, int]:
    """Per accepted bid (dseq) the time the last socket of all got it, for the bids every socket got.

    ``parts`` holds, per client process, its number of connected sockets and its sightings. Returns
    (dseq -> time seen by everyone, accepted bids some socket never got, deliveries missing).
    """
    everyone: dict[int, float] = {}
    unseen = missing = 0
    total = sum(sockets for sockets, _seen in parts)
    for dseq in accepted:
        got = [seen.get(dseq) for _sockets, seen in parts]
        count = sum(s.sockets for s in got if s is not None)
        if count >= total and all(s is not None for s in got):
            everyone[dseq] = max(s.last_at for s in got if s is not None)
        else:
            unseen += 1
            missing += total - count
    return everyone, unseen, missing


# (step, scheduled send, latency s, outcome, dseq or 0)
BidRow = tuple[int, float, float, str, int]


@dataclass
class BidStep:
    offered: int
    decided: int
    accepted: int
    span_s: float
    errors: Counter[str] = field(default_factory=Counter)
    ack_ms: list[float] = field(default_factory=list)
    everyone_ms: list[float] = field(default_factory=list)
    unseen: int = 0  # accepted, but not received by every socket
    missing: int = 0  # deliveries of accepted bids that never came
    saturated: bool = False

    @property
    def per_s(self) -> float:
        return self.decided / self.span_s if self.span_s else 0.0

    def failures(self) -> list[str]:
        """Why this step did not hold (empty: it held)."""
        out = [f"{n} {kind}" for kind, n in sorted(self.errors.items())]
        if self.unseen:
            out.append(f"{self.unseen} accepted bids not seen by every socket ({self.missing} deliveries)")
        if self.saturated:
            out.append("saturated: the last answer came over twice the step's length after its start")
        return out


def bid_step(
    rows: Sequence[BidRow],
    step_s: float,
    everyone: Mapping[int, float],
    unseen: set[int] | None = None,
    missing_by_dseq: Mapping[int, int] | None = None,
) -> BidStep:
    """One offered rate's figures. Only decisions (accepted or refused by the rules) count as decided
    and feed the ack percentiles; every other outcome is an error, counted by kind. The span runs to
    the step's last answer, so a backlog lowers decisions/s."""
    begin = min(r[1] for r in rows)
    end = max(r[1] + r[2] for r in rows)
    decided = [r for r in rows if is_decision(r[3])]
    accepted = [r for r in decided if r[3] == ACCEPTED]
    step = BidStep(
        offered=len(rows),
        decided=len(decided),
        accepted=len(accepted),
        span_s=max(step_s, end - begin),
        errors=Counter(r[3] for r in rows if not is_decision(r[3])),
        ack_ms=[r[2] * 1000 for r in decided],
        everyone_ms=[(everyone[r[4]] - r[1]) * 1000 for r in accepted if r[4] in everyone],
        saturated=end - begin > 2 * step_s,
    )
    lost = unseen or set()
    step.unseen = sum(1 for r in accepted if r[4] in lost)
    step.missing = sum((missing_by_dseq or {}).get(r[4], 0) for r in accepted)
    return step


# ------------------------------------------------------------------ ramps


def ramp_verdict(held: Sequence[bool]) -> tuple[int | None, bool]:
    """The best step of a rising ramp and whether the ramp holds up to it.

    The best is the last step that held; the ramp is sound when one held and every step below it
    held too (a failure below the reported best would be hidden by it). Steps above the best are the
    ramp's end and may fail."""
    best = max((i for i, ok in enumerate(held) if ok), default=None)
    return best, best is not None and all(held[: best + 1])


# ------------------------------------------------------------------ relay


def viewer_expected_frames(window_s: float, fps: float, rtp_span_frames: float) -> float:
    """Frames a viewer should have received in its window.

    The RTP span (last frame's timestamp less the one before the window) misses frames lost after
    the last one received, and is zero for a viewer with no frame before the window; the window's
    own length bounds it from below, less one frame that may be on its way at the end mark."""
    return max(rtp_span_frames, window_s * fps - 1)


@dataclass(frozen=True)
class ViewerWindow:
    frames: int
    expected: float
    window_s: float  # the viewer process's own time between its start and end marks


def relay_step(viewers: Sequence[ViewerWindow], failed_joins: int, n: int) -> tuple[float, float]:
    """(mean fps, frame loss) over the viewers that joined; a viewer that failed to join loses all."""
    if not viewers:
        return 0.0, 1.0
    fps = sum(v.frames / v.window_s for v in viewers) / len(viewers)
    frames = sum(v.frames for v in viewers)
    expected = sum(v.expected for v in viewers)
    loss = max(0.0, 1 - frames / expected) if expected else 1.0
    return fps, min(1.0, loss + failed_joins / n)


def relay_held(loss: float, fps: float, server_cpu: float, failed_joins: int) -> list[str]:
    """Why a relay step did not hold (empty: 30 fps, under 1 % frame loss, CPU to spare, all joined)."""
    out = []
    if failed_joins:
        out.append(f"{failed_joins} viewers failed to join")
    if loss >= 0.01:
        out.append(f"frame loss {loss:.2%}")
    if fps <= 29:
        out.append(f"{fps:.1f} fps")
    if server_cpu >= 0.95:
        out.append(f"server CPU {server_cpu:.0%}")
    return out


# ------------------------------------------------------------------ room


def room_failures(
    failed_connects: Mapping[str, int],
    closed_during_run: int,
    sent: int,
    receivers: int,
    received: int,
    sender_errors: Mapping[str, int],
) -> tuple[int, list[str]]:
    """(deliveries missing, why the run did not hold). Every receiver that was meant to connect should
    get every message the senders sent: one that never connected misses them all, so the expected
    deliveries count the sockets asked for, not the ones that made it."""
    missing = max(0, sent * receivers - received)
    out = [f"{n} sockets failed to connect ({kind})" for kind, n in sorted(failed_connects.items())]
    if closed_during_run:
        out.append(f"{closed_during_run} sockets closed during the run")
    out += [f"{n} chat messages answered {code}" for code, n in sorted(sender_errors.items())]
    if missing:
        out.append(f"{missing} deliveries missing of {sent * receivers}")
    return missing, out


def connect_failure_kind(exc: BaseException) -> str:
    """A short name for why a socket did not open: reset, refused, timeout, or the HTTP status line."""
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    text = str(exc)
    if text.startswith("HTTP/"):
        return text.split("\r\n", 1)[0]
    if "closed during handshake" in text:
        return "reset" if "ConnectionResetError" in text else "closed during handshake"
    return type(exc).__name__


def relay_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The headline of a relay ramp from the steps that held only: the largest N and the median
    server CPU per viewer (a failed step's CPU per viewer is not a cost per viewer served)."""
    held = [r for r in rows if not r["failures"]]
    per_viewer = statistics.median(r["cpu_per_viewer_ms"] for r in held) if held else float("nan")
    best, sound = ramp_verdict([not r["failures"] for r in rows])
    return {
        "largest_n_ok": rows[best]["n"] if best is not None else 0,
        "sound": sound,
        "cpu_per_viewer_ms": per_viewer,
    }
