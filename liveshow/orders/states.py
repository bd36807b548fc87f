"""The order state machine, pure: which move each party may make from which status.

awaiting_payment -> paying -> paid -> shipped -> delivered, and cancelled from awaiting_payment (buyer,
seller, the payment-window sweeper) or paid (seller, refunded). "paying" holds an order while a
processor call is in flight: the move into it is the one conditional update that lets a single click,
tab or worker make that call, so two never charge twice. A refund is recorded beside the status
(``refund_status``) so a refunded order is still "cancelled" for the unit fence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from liveshow.errors import Conflict, Forbidden

Role = Literal["buyer", "seller", "system"]
ROLES: tuple[Role, ...] = ("buyer", "seller", "system")

STATUSES = ("awaiting_payment", "paying", "paid", "shipped", "delivered", "cancelled")
REFUND_STATUSES = ("", "pending", "refunded", "failed")


@dataclass(frozen=True)
class Move:
    to: str
    # Statuses each role may make this move from; a role absent here may never make it.
    by: dict[Role, tuple[str, ...]]


MOVES: dict[str, Move] = {
    # The buyer starts a charge (a synchronous provider) ...
    "pay": Move("paying", {"buyer": ("awaiting_payment",)}),
    # ... which ends paid or back where it was.
    "charged": Move("paid", {"system": ("paying",)}),
    "charge_failed": Move("awaiting_payment", {"system": ("paying",)}),
    # Money that arrived elsewhere: the seller says so (manual provider) or a verified webhook does.
    "confirm_paid": Move("paid", {"seller": ("awaiting_payment",), "system": ("awaiting_payment",)}),
    "ship": Move("shipped", {"seller": ("paid",)}),
    "deliver": Move("delivered", {"buyer": ("shipped",), "seller": ("shipped",)}),
    "cancel": Move(
        "cancelled",
        {"buyer": ("awaiting_payment",), "seller": ("awaiting_payment", "paid")},
    ),
    "expire": Move("cancelled", {"system": ("awaiting_payment",)}),
}

_LABEL = {
    "pay": "paid for",
    "charged": "completed",
    "charge_failed": "failed",
    "confirm_paid": "confirmed as paid",
    "ship": "shipped",
    "deliver": "marked delivered",
    "cancel": "cancelled",
    "expire": "expired",
}


def sources(action: str, role: Role) -> tuple[str, ...]:
    """The statuses from which ``role`` may make ``action`` (empty: never)."""
    move = MOVES.get(action)
    return move.by.get(role, ()) if move else ()


def check(action: str, role: Role, status: str) -> Move:
    """The move, or the reason it is refused: Forbidden when this party never makes it, Conflict when
    the order is not (or no longer) in a status it can be made from."""
    move = MOVES.get(action)
    if move is None:
        raise Conflict(f"Unknown order action {action!r}.")
    allowed = move.by.get(role)
    if not allowed:
        raise Forbidden(f"An order cannot be {_LABEL[action]} by its {role}.")
    if status not in allowed:
        raise Conflict(f"A {label(status)} order cannot be {_LABEL[action]}.")
    return move


def refund_due(from_status: str, to_status: str) -> bool:
    """Cancelling an order the buyer already paid for gives their money back."""
    return to_status == "cancelled" and from_status in ("paid", "shipped", "delivered")


def label(status: str) -> str:
    return status.replace("_", " ")
