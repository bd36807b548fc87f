"""The order state machine, exhaustively: every action x role x status is either the one allowed move
or a clear refusal (Forbidden for a party that never makes the move, Conflict for the wrong status)."""

from __future__ import annotations

import itertools

import pytest

from liveshow.errors import Conflict, Forbidden
from liveshow.orders import states

# The whole table, written out independently of MOVES: (action, role, from) -> to.
EXPECTED = {
    ("pay", "buyer", "awaiting_payment"): "paying",
    ("charged", "system", "paying"): "paid",
    ("charge_failed", "system", "paying"): "awaiting_payment",
    ("confirm_paid", "seller", "awaiting_payment"): "paid",
    ("confirm_paid", "system", "awaiting_payment"): "paid",
    ("ship", "seller", "paid"): "shipped",
    ("deliver", "buyer", "shipped"): "delivered",
    ("deliver", "seller", "shipped"): "delivered",
    ("cancel", "buyer", "awaiting_payment"): "cancelled",
    ("cancel", "seller", "awaiting_payment"): "cancelled",
    ("cancel", "seller", "paid"): "cancelled",
    ("expire", "system", "awaiting_payment"): "cancelled",
}


@pytest.mark.parametrize(
    ("action", "role", "status"), list(itertools.product(states.MOVES, states.ROLES, states.STATUSES))
)
def test_every_move(action: str, role: states.Role, status: str) -> None:
    key = (action, role, status)
    if key in EXPECTED:
        assert states.check(action, role, status).to == EXPECTED[key]
        assert status in states.sources(action, role)
        return
    ever = any(a == action and r == role for a, r, _ in EXPECTED)
    with pytest.raises(Conflict if ever else Forbidden) as info:
        states.check(action, role, status)
    assert info.value.message  # a reason a person can read
    assert status not in states.sources(action, role)


def test_every_target_is_a_status_and_terminal_statuses_have_no_way_out() -> None:
    assert {m.to for m in states.MOVES.values()} <= set(states.STATUSES)
    for status in ("delivered", "cancelled"):
        assert not any(status in froms for m in states.MOVES.values() for froms in m.by.values())


def test_unknown_action_is_refused() -> None:
    with pytest.raises(Conflict):
        states.check("teleport", "buyer", "paid")
    assert states.sources("teleport", "buyer") == ()


@pytest.mark.parametrize("status", states.STATUSES)
def test_refund_due_only_when_a_paid_order_is_cancelled(status: str) -> None:
    assert states.refund_due(status, "cancelled") == (status in ("paid", "shipped", "delivered"))
    assert not states.refund_due(status, "paid")


def test_labels() -> None:
    assert states.label("awaiting_payment") == "awaiting payment"
