"""Garbage-collector settings for a server process that holds thousands of long-lived sockets.

CPython's full (generation 2) collection stops the whole process while it walks every tracked object.
With 2,000 room sockets that is ~450,000 objects and 220-340 ms on the development machine, measured
with a gc callback during bench/room.py: every event in every room waited that long, several times a
minute. Two changes keep full collections off the hot path:

* everything alive once the app has started (modules, routes, templates, caches: ~150,000 objects) is
  moved out of the collector's sight with ``gc.freeze()``; it lives as long as the process anyway,
  and reference counting still frees what is not part of a cycle;
* full collections are considered ten times less often (the third threshold), so a live show's steady
  traffic, whose garbage dies young, seldom triggers one. Young collections run as before.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import Histogram

YOUNG, MIDDLE, OLD = 700, 10, 100


def tune_gc() -> None:
    gc.collect()  # what is garbage now must not be frozen with the rest
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, OLD)


@contextmanager
def pauses_timed(histogram: Histogram) -> Iterator[None]:
    """Every collection's stop-the-world pause into ``histogram`` (label: generation) while inside:
    the stalls every room and every show writer of the process feel at once."""
    started = 0.0
    by_generation = [histogram.labels(str(generation)) for generation in range(3)]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            by_generation[info["generation"]].observe(time.perf_counter() - started)

    gc.callbacks.append(on_gc)
    try:
        yield
    finally:
        gc.callbacks.remove(on_gc)
