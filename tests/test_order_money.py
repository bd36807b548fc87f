"""Money arithmetic in integer cents: fees round down, figures per show count only what was paid."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveshow.orders.money import Line, ShowFigures, fee_cents, figures_by_show, total


@pytest.mark.parametrize(
    ("price", "bps", "fee"),
    [(1000, 0, 0), (1000, 250, 25), (999, 250, 24), (1, 9999, 0), (1, 10_000, 1), (12345, 1000, 1234)],
)
def test_fee_rounds_down(price: int, bps: int, fee: int) -> None:
    assert fee_cents(price, bps) == fee


@pytest.mark.parametrize("bps", [-1, 10_001])
def test_fee_outside_range_is_refused(bps: int) -> None:
    with pytest.raises(ValueError, match="basis points"):
        fee_cents(100, bps)


@given(st.integers(0, 10**9), st.integers(0, 10_000))
def test_fee_never_exceeds_price_and_is_within_a_cent(price: int, bps: int) -> None:
    fee = fee_cents(price, bps)
    assert 0 <= fee <= price
    assert price * bps - 10_000 < fee * 10_000 <= price * bps


def test_figures_by_show() -> None:
    lines = [
        Line(1, "paid", 2000, 50, 0),
        Line(1, "shipped", 1000, 25, 0),
        Line(1, "cancelled", 500, 0, 500),  # refunded
        Line(1, "awaiting_payment", 700, 0, 0),
        Line(2, "delivered", 3000, 75, 0),
        Line(2, "cancelled", 400, 0, 0),  # never paid
        Line(None, "paying", 100, 0, 0),
    ]
    figures = figures_by_show(lines, shipping={1: 500})
    assert figures == [
        ShowFigures(1, 4, 3000, 75, 500, 700, 500),
        ShowFigures(2, 2, 3000, 75, 0, 0, 0),
        ShowFigures(None, 1, 0, 0, 0, 100, 0),
    ]
    assert [f.net_cents for f in figures] == [3425, 2925, 0]
    everything = total(figures)
    assert (everything.orders, everything.sales_cents, everything.fees_cents) == (7, 6000, 150)
    assert (everything.refunded_cents, everything.pending_cents, everything.net_cents) == (500, 800, 6350)
    assert figures_by_show([]) == []
