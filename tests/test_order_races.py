"""Money moves once: two clicks or tabs paying or cancelling the same order at the same moment reach the
payment provider once (the status changes conditionally before the provider is called)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from liveshow.db import Database
from liveshow.errors import DomainError
from liveshow.orders import service
from liveshow.orders.models import Order
from tests.auction_fixtures import make_world


class SlowProvider:
    """Counts calls; each call waits (up to a deadline) for a second one, as a slow processor would
    while another request for the same order arrives."""

    name = "slow"

    def __init__(self) -> None:
        self.charges = 0
        self.refunds = 0
        self._lock = threading.Lock()

    def _wait_for_second(self, count: Callable[[], int]) -> None:
        deadline = time.monotonic() + 1.5
        while count() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)

    def charge(self, order: Order) -> str:
        with self._lock:
            self.charges += 1
        self._wait_for_second(lambda: self.charges)
        return f"slow_{order.id}_{self.charges}"

    def refund(self, order: Order) -> str:
        with self._lock:
            self.refunds += 1
        self._wait_for_second(lambda: self.refunds)
        return f"slow_refund_{order.id}"


def _twice(db: Database, act: Callable[[object], object]) -> list[object]:
    """Run ``act(session)`` in two threads, each with its own session, started together."""
    results: list[object] = []
    start = threading.Barrier(2)

    def one() -> None:
        with db.session() as s:
            start.wait(5)
            try:
                results.append(act(s))
            except DomainError as exc:
                results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def _order(db: Database) -> tuple[Order, int, int]:
    w = make_world(db, quantities=(1,))
    buyer = w.viewers[0].id or 0
    with db.session() as s:
        order = service.create_order(s, buyer, w.listings[0].id or 0, 2500, "claim", show_id=w.show_id)
    return order, buyer, w.seller.id or 0


def test_two_concurrent_pays_charge_once(database_url: str) -> None:
    db = Database(database_url)
    order, buyer, _ = _order(db)
    provider = SlowProvider()
    results = _twice(db, lambda s: service.pay(s, order.id or 0, buyer, provider))  # type: ignore[arg-type]
    assert provider.charges == 1
    assert sum(isinstance(r, Order) for r in results) == 1
    assert sum(isinstance(r, DomainError) for r in results) == 1
    with db.session() as s:
        stored = s.get(Order, order.id)
        assert stored is not None and stored.status == "paid"
    db.close()


def test_two_concurrent_cancels_refund_once(database_url: str) -> None:
    db = Database(database_url)
    order, buyer, seller = _order(db)
    with db.session() as s:
        service.pay(s, order.id or 0, buyer, SlowProviderNoWait())
    provider = SlowProvider()
    results = _twice(db, lambda s: service.cancel(s, order.id or 0, seller, provider))  # type: ignore[arg-type]
    assert provider.refunds == 1
    assert sum(isinstance(r, DomainError) for r in results) == 1
    with db.session() as s:
        stored = s.get(Order, order.id)
        assert stored is not None and stored.status == "cancelled"
    db.close()


class SlowProviderNoWait:
    name = "quick"

    def charge(self, order: Order) -> str:
        return "quick"

    def refund(self, order: Order) -> str:
        return "quick_refund"
