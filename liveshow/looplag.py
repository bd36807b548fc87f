"""How late the event loop runs a timer: every socket, bid and answer of the process waits that long.

A probe sleeps a fixed interval and records by how much it overslept; a loop busy with one long
callback (a big round of writes, a slow parse, a collection) shows up here, whatever caused it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

PROBE_SECONDS = 0.01


class Observer(Protocol):
    """What takes each measured lag: a Prometheus histogram, or the admission meter's window."""

    def observe(self, amount: float) -> None: ...


async def measure_lag_forever(histogram: Observer, interval: float = PROBE_SECONDS) -> None:
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        await asyncio.sleep(interval)
        histogram.observe(max(0.0, loop.time() - started - interval))
