"""Money moves once: two clicks or tabs paying or cancelling the same order at the same moment reach the
payment provider once (the status changes conditionally before the provider is called)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from sqlmodel import Session

from liveshow.auction.lot_bids import ranked_bids
from liveshow.clock import utcnow
from liveshow.db import Database
from liveshow.errors import DomainError
from liveshow.orders import checkout, service
from liveshow.orders.models import Order, Payment, SellerPayments
from liveshow.orders.stripe_provider import StripeProvider
from liveshow.settings import Settings
from tests.auction_fixtures import make_world
from tests.stripe_standin import StripeStandIn


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


def _twice(db: Database, act: Callable[[Session], object]) -> list[object]:
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
    results = _twice(db, lambda s: service.pay(s, order.id or 0, buyer, provider))
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
    results = _twice(db, lambda s: service.cancel(s, order.id or 0, seller, provider))
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


def test_concurrent_checkouts_and_webhook_deliveries_charge_and_refund_once(
    database_url: str,
) -> None:
    """Two tabs start the same checkout at once: one payment, one PaymentIntent. Two deliveries of the
    success (the same event twice, and a second event for it) after the window closed: one refund."""

    standin = StripeStandIn().start()
    try:
        provider = StripeProvider(
            Settings(
                stripe_secret_key="sk_test_x", stripe_webhook_secret="whsec_x", stripe_api_base=standin.url
            )
        )
        db = Database(database_url)
        order, buyer, seller = _order(db)
        with db.session() as s:
            s.add(SellerPayments(seller_id=seller, shipping_cents=300, stripe_account="acct_1"))
            s.commit()

        def start(s: object) -> object:
            return checkout.start_checkout(s, provider, buyer, seller, order.show_id, 0)  # type: ignore[arg-type]

        started = _twice(db, start)
        payments = [p for p in started if isinstance(p, Payment)]
        assert len(payments) == 2, started
        assert len({p.id for p in payments}) == 1 and len({p.intent_id for p in payments}) == 1
        assert len(standin.intents) == 1
        intent_id = payments[0].intent_id or ""
        with db.session() as s:
            assert len(service.expire_unpaid(s, ranked_bids, utcnow() + timedelta(minutes=16), 15)) == 1
        event = standin.confirm(intent_id)
        twin = json.loads(event)
        twin["id"] = "evt_twin"
        events = iter([json.loads(event), twin])
        lock = threading.Lock()

        def deliver(s: Session) -> str:
            with lock:
                ev = next(events)
            return checkout.apply_event(s, provider, ev)

        outcomes = _twice(db, deliver)
        assert sorted(map(str, outcomes)) == ["refunded", "stale"]
        assert [(r["amount"], r["payment_intent"]) for r in standin.refunds] == [(2500 + 300, intent_id)]
        with db.session() as s:
            stored = s.get(Order, order.id)
            assert stored is not None and (stored.status, stored.refund_status) == ("cancelled", "refunded")
        db.close()
    finally:
        standin.stop()
