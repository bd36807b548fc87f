"""Group commit: how long a round of work (a leader's batch, a process's send of commands) waits so
that rounds start at most once per interval. ``pace`` is the rule, pure (the caller passes the clock's
readings); ``Pacer`` keeps one loop's last start and waits on the event loop's clock.

Each round costs the same round trips whatever it holds, so when work comes faster than the interval
the rounds carry more of it each, and the cost per item falls; a lone item into a quiet show waits
for nothing (the last round started long enough ago)."""

from __future__ import annotations

import asyncio

# A show's writer starts a batch at most this often (local.py, distributed.py). Each batch costs the
# same round trips whatever its size (the commit, the announce, the archive, the replies, and every
# process's reads of them): at 2,000 bids/s, batches of 2 cost as much CPU as the bids. In
# bench/bids.py at 2,000 bids/s, 10 ms rather than 5 cut the CPU per 1,000 decisions by a sixth and
# the ack p99 with it (less CPU, less queueing), for about 4 ms more ack p50 (docs/performance.md).
BATCH_EVERY_S = 0.010


def pace(last_start: float, now: float, every: float) -> float:
    """Seconds to wait before the next round, which must start at least ``every`` after the last."""
    return max(0.0, last_start + every - now)


class Pacer:
    """One loop's rounds, at most one per ``every`` seconds."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._last_start = float("-inf")

    async def next_round(self, worth_waiting: bool = True) -> None:
        """Wait out the rest of the interval (when ``worth_waiting``: there is work to gather, and
        room for more in the round), then count the round as started."""
        loop = asyncio.get_running_loop()
        wait = pace(self._last_start, loop.time(), self.every)
        if wait > 0 and worth_waiting:
            await asyncio.sleep(wait)  # what comes meanwhile joins this round
        self._last_start = loop.time()
