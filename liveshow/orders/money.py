"""Money arithmetic, pure and in integer cents: the platform's fee, a bundle's total, a seller's
figures per show. Nothing here reads a clock, a database or a processor."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MAX_BPS = 10_000


def fee_cents(price_cents: int, bps: int) -> int:
    """The platform's share of a sale, rounded down: a seller is never charged a fraction of a cent."""
    if not 0 <= bps <= MAX_BPS:
        raise ValueError(f"fee of {bps} basis points is outside 0..{MAX_BPS}")
    return price_cents * bps // MAX_BPS


@dataclass(frozen=True)
class Line:
    """One order as the books see it."""

    show_id: int | None
    status: str
    price_cents: int
    fee_cents: int
    refunded_cents: int


@dataclass(frozen=True)
class ShowFigures:
    show_id: int | None
    orders: int = 0
    sales_cents: int = 0  # what buyers paid for items still sold (shipping excluded)
    fees_cents: int = 0
    refunded_cents: int = 0
    pending_cents: int = 0  # ordered, not paid yet
    shipping_cents: int = 0  # shipping fees paid by buyers (one per bundle), the seller's to keep

    @property
    def net_cents(self) -> int:
        """The seller's payout: paid sales less the platform's fees, plus the shipping they charged."""
        return self.sales_cents - self.fees_cents + self.shipping_cents


PAID = ("paid", "shipped", "delivered")


def figures_by_show(
    lines: Iterable[Line], shipping: dict[int | None, int] | None = None
) -> list[ShowFigures]:
    """Per show, in first-seen order: sales and fees of paid orders, refunds, what is still unpaid,
    and the shipping paid for that show's bundles (``shipping``: show id -> cents)."""
    shipping = shipping or {}
    by: dict[int | None, ShowFigures] = {}
    for line in lines:
        cur = by.get(line.show_id, ShowFigures(line.show_id))
        sales, fees, pending = cur.sales_cents, cur.fees_cents, cur.pending_cents
        if line.status in PAID:
            sales, fees = sales + line.price_cents, fees + line.fee_cents
        elif line.status in ("awaiting_payment", "paying"):
            pending += line.price_cents
        by[line.show_id] = ShowFigures(
            line.show_id,
            orders=cur.orders + 1,
            sales_cents=sales,
            fees_cents=fees,
            refunded_cents=cur.refunded_cents + line.refunded_cents,
            pending_cents=pending,
        )
    return [
        ShowFigures(
            f.show_id,
            f.orders,
            f.sales_cents,
            f.fees_cents,
            f.refunded_cents,
            f.pending_cents,
            shipping.get(f.show_id, 0),
        )
        for f in by.values()
    ]


def total(figures: Iterable[ShowFigures]) -> ShowFigures:
    rows = list(figures)
    return ShowFigures(
        None,
        orders=sum(f.orders for f in rows),
        sales_cents=sum(f.sales_cents for f in rows),
        fees_cents=sum(f.fees_cents for f in rows),
        refunded_cents=sum(f.refunded_cents for f in rows),
        pending_cents=sum(f.pending_cents for f in rows),
        shipping_cents=sum(f.shipping_cents for f in rows),
    )
