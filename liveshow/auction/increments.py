"""The bid increment table (DESIGN.md): how much the next bid must add at a given price. Cents."""

from __future__ import annotations

# (from price, increment), ascending. Below $1 the first step applies too.
STEPS: tuple[tuple[int, int], ...] = (
    (0, 100),
    (3_000, 200),
    (5_000, 300),
    (10_000, 500),
    (30_000, 1_000),
    (100_000, 2_000),
    (200_000, 5_000),
)


def increment(price_cents: int) -> int:
    step = STEPS[0][1]
    for start, inc in STEPS:
        if price_cents >= start:
            step = inc
        else:
            break
    return step


def next_bid(price_cents: int) -> int:
    return price_cents + increment(price_cents)
