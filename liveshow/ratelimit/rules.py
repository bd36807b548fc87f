"""The pure part of rate limiting: rules ("N per T seconds"), the sliding log that decides one hit,
and the refusal a client is shown. No I/O; the caller passes the time in.

A sliding log (the times of the accepted hits in the last window) rather than a token bucket: a
refusal can then say exactly when the oldest hit leaves the window, and the Redis twin
(``adapters._CHECK``) keeps the same log as a sorted set.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from liveshow.errors import RateLimited


@dataclass(frozen=True)
class Rule:
    """At most ``limit`` hits in any ``window`` seconds; a limit of 0 switches the rule off.

    ``spaced``: slow mode may apply (chat), so the last accepted hit is kept even while it is off.
    """

    name: str
    limit: int
    window: float
    spaced: bool = False

    @property
    def off(self) -> bool:
        return self.limit <= 0


def parse_rule(name: str, text: str) -> Rule:
    """``"10/60"`` is 10 per 60 s; ``"0"`` or ``"off"`` is no limit. Bad text fails at startup."""
    raw = text.strip().lower()
    if raw in ("", "0", "off"):
        return Rule(name, 0, 1.0)
    count, sep, seconds = raw.partition("/")
    try:
        limit, window = int(count), float(seconds)
    except ValueError:
        limit, window = -1, -1.0
    if not sep or limit < 0 or not 0 < window <= 86400 * 7 or not math.isfinite(window):
        raise ValueError(f"limit {name} must look like COUNT/SECONDS (e.g. 10/60) or off, not {text!r}")
    return Rule(name, limit, window)


@dataclass(frozen=True)
class Verdict:
    """A hit's outcome: allowed, or refused for ``wait`` seconds (``slow``: by slow mode)."""

    allowed: bool
    wait: float = 0.0
    slow: bool = False


ALLOWED = Verdict(True)


class SlidingLog:
    """The accepted hits of one key; ``hit`` counts one at ``now`` or says how long to wait.

    ``slow`` (slow mode, chat) additionally spaces accepted hits by that many seconds, measured from
    the last accepted hit even when that is older than the window.
    """

    __slots__ = ("hits", "last")

    def __init__(self) -> None:
        self.hits: deque[float] = deque()
        self.last: float | None = None

    def hit(self, rule: Rule, now: float, slow: float = 0.0) -> Verdict:
        while self.hits and self.hits[0] <= now - rule.window:
            self.hits.popleft()
        if slow > 0 and self.last is not None and now - self.last < slow:
            return Verdict(False, slow - (now - self.last), slow=True)
        if not rule.off and len(self.hits) >= rule.limit:
            return Verdict(False, self.hits[0] + rule.window - now)
        if not rule.off:
            self.hits.append(now)
        self.last = now
        return ALLOWED

    def idle_since(self, cutoff: float) -> bool:
        return self.last is None or self.last <= cutoff


# What a person reads when refused, per rule name; {n} the limit, {t} the window, {w} the wait.
MESSAGES = {
    "chat": "Too many messages: at most {n} in {t} s; wait {w} s.",
    "reaction": "Too many reactions: at most {n} in {t} s; wait {w} s.",
    "bid": "Too many bids and claims: at most {n} in {t} s; wait {w} s.",
    "signin": "Too many sign-in attempts; try again in {w} s.",
    "signup": "Too many accounts made from this address; try again in {w} s.",
    "whip": "Too many publish attempts; try again in {w} s.",
    "whep": "Too many watch requests; try again in {w} s.",
    "socket": "Too many room connections; try again in {w} s.",
}


def refusal(rule: Rule, verdict: Verdict, slow: float = 0.0) -> RateLimited:
    """The error for a refused hit: 429 + Retry-After over HTTP, a rate_limited frame in the room."""
    wait = max(verdict.wait, 0.001)
    shown = max(1, math.ceil(wait))
    if verdict.slow:
        text = f"Slow mode is on: one message every {slow:g} s; wait {shown} s."
    else:
        template = MESSAGES.get(rule.name.split(".")[0], "Too many requests; try again in {w} s.")
        text = template.format(n=rule.limit, t=f"{rule.window:g}", w=shown)
    return RateLimited(text, retry_after=round(wait, 1), retry_after_ms=math.ceil(wait * 1000))


def retry_after_header(details: dict[str, object]) -> dict[str, str]:
    """``Retry-After`` (whole seconds, rounded up) for an error that carries ``retry_after_ms``."""
    ms = details.get("retry_after_ms")
    if not isinstance(ms, int):
        return {}
    return {"Retry-After": str(max(1, math.ceil(ms / 1000)))}
