"""Admission of new viewers on this process: measures its headroom and paces joins.

The adapter around two pure parts: ``headroom.decide`` (admit or refuse, with hysteresis) and
``JoinLedger`` (how many joins may be in progress). It measures what they need: the process's own
CPU (process time over wall time, smoothed) and the event loop's lag (its own 10 ms probe), sampled
every ``SAMPLE_S``. The media service asks ``enter`` before it answers a viewer's offer and calls
``leave`` when that viewer's connection is up or gone; the publisher never comes through here.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Callable

from liveshow.looplag import measure_lag_forever
from liveshow.media.errors import ProcessFull
from liveshow.media.headroom import ADMIT, HeadroomLimits, Sample, Verdict, decide, smooth
from liveshow.media.joins import JoinLedger

log = logging.getLogger(__name__)

SAMPLE_S = 0.25
# Smoothing of CPU and lag: long enough to ride out one keyframe's fan-out, short enough that a
# surge of joins is seen within a second or two (the join ledger covers the first moments).
TAU_S = 1.0
JOINING = "joining"
JOIN_RETRY_S = 1


class LagWindow:
    """Collects the probe's lags between two samples; the sample is their mean."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def observe(self, amount: float) -> None:
        self.total += amount
        self.count += 1

    def take(self) -> float | None:
        if not self.count:
            return None
        mean = self.total / self.count
        self.total, self.count = 0.0, 0
        return mean


class Admission:
    def __init__(
        self,
        limits: HeadroomLimits,
        max_joining: int,
        join_wait_s: float,
        join_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        self.limits = limits
        self.joins = JoinLedger(max_joining, join_timeout_s)
        self.join_wait_s = join_wait_s
        self.clock = clock
        self.cpu_clock = cpu_clock
        self.verdict: Verdict = ADMIT
        self.cpu = 0.0
        self.lag_s = 0.0
        self.lag = LagWindow()
        self._last_wall = clock()
        self._last_cpu = cpu_clock()
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._offers = itertools.count(1)
        self._offering = 0  # slots taken by offers not yet answered (not yet among the viewers)
        self._tasks: list[asyncio.Task[None]] = []
        self.refused: collections.Counter[str] = collections.Counter()

    # ------------------------------------------------------------ measuring

    def sample(self) -> None:
        """Fold the CPU and lag since the last sample into the smoothed figures."""
        now, cpu_now = self.clock(), self.cpu_clock()
        dt = now - self._last_wall
        if dt <= 0:
            return
        used = (cpu_now - self._last_cpu) / dt
        self._last_wall, self._last_cpu = now, cpu_now
        self.cpu = smooth(self.cpu, used, dt, TAU_S)
        lag = self.lag.take()
        if lag is not None:
            self.lag_s = smooth(self.lag_s, lag, dt, TAU_S)

    def check(self, viewers: int) -> Verdict:
        """The verdict for one more viewer with ``viewers`` on the process now (also refreshes the
        hysteresis state, so a load record shows what a newcomer would be told)."""
        sample = Sample(viewers + self._offering, self.cpu, self.lag_s, self.clock())
        self.verdict = decide(self.limits, self.verdict, sample)
        return self.verdict

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_S)
            self.sample()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(measure_lag_forever(self.lag), name="admission-lag"),
            asyncio.create_task(self._sample_forever(), name="admission-sample"),
        ]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        for waiter in self._waiters:
            waiter.cancel()
        self._waiters.clear()

    # ------------------------------------------------------------ admitting

    def _refuse(self, cause: str, retry_s: int, message: str) -> ProcessFull:
        self.refused[cause] += 1
        return ProcessFull(message, cause=cause, retry_after=retry_s, retry_after_ms=retry_s * 1000)

    async def enter(self, viewers: Callable[[], int]) -> str:
        """A join slot for one more viewer, waiting up to ``join_wait_s`` for one; raises ProcessFull
        (503 + Retry-After) when the process has no headroom or the joins stay busy. ``viewers``
        counts the process's viewers (asked again after each wait)."""
        self.refuse_if_full(viewers)
        token = f"offer-{next(self._offers)}"
        deadline = self.clock() + self.join_wait_s
        loop = asyncio.get_running_loop()
        while not self.joins.enter(token, self.clock()):
            now = self.clock()
            if now >= deadline:
                raise self._refuse(JOINING, JOIN_RETRY_S, "Many viewers are joining right now; try again.")
            wait = deadline - now
            expiry = self.joins.next_expiry()
            if expiry is not None:
                wait = min(wait, max(0.01, expiry - now))
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait([waiter], timeout=wait)
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_next()  # woken for a free slot but gone: the next waiter takes it
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            self.refuse_if_full(viewers)  # headroom may have gone while it waited
        self._offering += 1
        return token

    def refuse_if_full(self, viewers: Callable[[], int]) -> None:
        """Raise ProcessFull when one more viewer would be refused now (no slot is taken)."""
        verdict = self.check(viewers())
        if not verdict.admit:
            raise self._refuse(
                verdict.reason, verdict.retry_after_s, "This server is full right now; try again shortly."
            )

    def answered(self, token: str, session_id: str | None) -> None:
        """The offer is answered (the session now counts among the viewers) or refused (None)."""
        self._offering -= 1
        if session_id is None:
            self.leave(token)
        else:
            self.joins.rename(token, session_id)

    def leave(self, token: str) -> None:
        """The join of ``token`` is over (connected, failed or closed): its slot goes to a waiter."""
        if self.joins.leave(token):
            self._wake_next()

    def _wake_next(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def joining(self) -> int:
        return self.joins.joining(self.clock())
