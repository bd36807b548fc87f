"""Stripe, against a local stand-in (tests/stripe_standin.py): a buyer who won two items pays once for
the bundle, the order is paid only by the signed webhook, the seller sees the net after fees,
cancelling one item refunds it; signature failures apply nothing; replays, out-of-order events, a
declined card and a payment after the window closed never charge or refund twice."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.auction.lot_bids import ranked_bids
from liveshow.clock import utcnow
from liveshow.orders import service
from liveshow.orders.models import Order, Payment, ProcessorEvent, SellerPayments
from tests.auction_fixtures import World, make_world
from tests.order_helpers import CSRF, orders_app, sign_in
from tests.stripe_standin import WEBHOOK_SECRET, StripeStandIn, sign

SHIPPING = 500
FEE_BPS = 1000  # 10 %


@dataclass
class Shop:
    app: Starlette
    client: TestClient
    stripe: StripeStandIn
    world: World
    orders: list[Order]

    @property
    def db(self):  # type: ignore[no-untyped-def]
        return self.app.state.ctx.db

    @property
    def buyer(self) -> int:
        return self.world.viewers[0].id or 0

    @property
    def seller(self) -> int:
        return self.world.seller.id or 0

    def checkout(self) -> Payment:
        sign_in(self.client, self.app, self.buyer)
        r = self.client.post(
            "/orders/checkout",
            data={"csrf_token": CSRF, "seller_id": self.seller, "show_id": self.world.show_id},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        payment_id = int(r.headers["location"].rsplit("/", 1)[1])
        with self.db.session() as s:
            payment = s.get(Payment, payment_id)
            assert payment is not None
            return payment

    def deliver(self, payload: str, header: str | None = None) -> dict[str, object]:
        headers = {"stripe-signature": sign(payload) if header is None else header}
        r = self.client.post("/webhooks/stripe", content=payload.encode(), headers=headers)
        return {"status": r.status_code, **r.json()}

    def statuses(self) -> list[tuple[str, str, int]]:
        with self.db.session() as s:
            rows = [s.get(Order, o.id) for o in self.orders]
            return [(o.status, o.refund_status, o.refunded_cents) for o in rows if o is not None]


@pytest.fixture
def shop(tmp_path: Path, database_url: str) -> Iterator[Shop]:
    standin = StripeStandIn().start()
    try:
        with orders_app(
            tmp_path,
            database_url,
            "stripe",
            stripe_secret_key="sk_test_standin",
            stripe_webhook_secret=WEBHOOK_SECRET,
            stripe_publishable_key="pk_test_standin",
            stripe_api_base=standin.url,
            platform_fee_bps=FEE_BPS,
        ) as (app, client):
            db = app.state.ctx.db
            w = make_world(db, quantities=(1, 3))
            buyer = w.viewers[0].id or 0
            with db.session() as s:
                s.add(
                    SellerPayments(
                        seller_id=w.seller.id or 0, shipping_cents=SHIPPING, stripe_account="acct_seller1"
                    )
                )
                s.commit()
                won = service.create_order(
                    s, buyer, w.listings[0].id or 0, 2100, "auction", show_id=w.show_id
                )
                claimed = service.create_order(
                    s, buyer, w.listings[1].id or 0, 1500, "claim", show_id=w.show_id
                )
            yield Shop(app, client, standin, w, [won, claimed])
    finally:
        standin.stop()


def test_bundle_paid_once_by_webhook_then_one_item_refunded(shop: Shop) -> None:
    sign_in(shop.client, shop.app, shop.buyer)
    page = shop.client.get("/orders").text
    assert 'action="/orders/checkout"' in page and "Pay by card" in page
    payment = shop.checkout()
    again = shop.checkout()  # a second tab, a double click: the same checkout and PaymentIntent
    assert again.id == payment.id and again.intent_id == payment.intent_id
    creates = shop.stripe.posts("/v1/payment_intents")
    assert all(r.idempotency_key == f"liveshow-payment-{payment.id}" for r in creates)
    assert len(shop.stripe.intents) == 1
    params = creates[0].params
    assert params["amount"] == str(2100 + 1500 + SHIPPING)  # one charge: both items plus one shipping fee
    assert params["application_fee_amount"] == str(210 + 150)
    assert params["transfer_data"] == {"destination": "acct_seller1"}
    assert params["metadata"] == {"liveshow_payment_id": str(payment.id)}

    checkout_page = shop.client.get(f"/orders/checkout/{payment.id}").text
    assert "https://js.stripe.com/v3/" in checkout_page and payment.client_secret in checkout_page
    assert "$41.00" in checkout_page
    # another buyer cannot see it
    sign_in(shop.client, shop.app, shop.world.viewers[1].id or 0)
    assert shop.client.get(f"/orders/checkout/{payment.id}").status_code == 403

    # nothing is paid until Stripe's signed webhook says so
    assert shop.statuses() == [("awaiting_payment", "", 0)] * 2
    assert payment.intent_id
    event = shop.stripe.confirm(payment.intent_id)
    assert shop.deliver(event) == {"status": 200, "received": True, "outcome": "paid"}
    assert shop.statuses() == [("paid", "", 0)] * 2
    assert shop.deliver(event)["outcome"] == "duplicate"  # a replay applies nothing

    # the seller sees the net after fees
    sign_in(shop.client, shop.app, shop.seller)
    sold = shop.client.get("/api/orders?role=seller").json()["orders"]
    assert sorted((o["price_cents"], o["fee_cents"], o["net_cents"]) for o in sold) == [
        (1500, 150, 1350),
        (2100, 210, 1890),
    ]
    assert {o["bundle_shipping_cents"] for o in sold} == {SHIPPING}

    # cancelling one item refunds that item only, once
    r = shop.client.post(
        f"/orders/{shop.orders[1].id}/cancel", data={"csrf_token": CSRF}, follow_redirects=False
    )
    assert r.status_code == 303
    assert (
        shop.client.post(f"/orders/{shop.orders[1].id}/cancel", data={"csrf_token": CSRF}).status_code == 409
    )
    assert [(x["amount"], x["payment_intent"]) for x in shop.stripe.refunds] == [(1500, payment.intent_id)]
    refund_posts = shop.stripe.posts("/v1/refunds")
    assert [p.idempotency_key for p in refund_posts] == [f"liveshow-refund-order-{shop.orders[1].id}"]
    assert refund_posts[0].params["reverse_transfer"] == "true"
    assert shop.statuses() == [("paid", "", 0), ("cancelled", "refunded", 1500)]
    assert shop.deliver(event)["outcome"] == "duplicate"
    refunded = next(
        o for o in shop.client.get("/api/orders?role=seller").json()["orders"] if o["id"] == shop.orders[1].id
    )
    assert (refunded["status"], refunded["refunded_cents"], refunded["net_cents"]) == ("cancelled", 1500, 0)
    # the money page: sales 21.00, fee 2.10, shipping 5.00, payout 23.90, refunded 15.00
    rows = shop.client.get("/orders/money.csv").text.splitlines()
    assert rows[1] == f"{shop.world.show_id},Closet clear-out,2,21.00,2.10,5.00,23.90,15.00,0.00"


def test_bad_signatures_apply_nothing(shop: Shop) -> None:
    payment = shop.checkout()
    assert payment.intent_id
    event = shop.stripe.confirm(payment.intent_id)
    old = int(time.time()) - 600
    forged = event.replace('"succeeded"', '"succeeded" ')
    for payload, header in (
        (event, sign(event, secret="whsec_wrong")),  # not our secret
        (event, ""),  # no header
        (event, "garbage"),
        (event, sign(event, timestamp=old)),  # a recorded event replayed ten minutes later
        (forged, sign(event)),  # body changed after signing
    ):
        reply = shop.deliver(payload, header)
        assert (reply["status"], reply["error"]) == (400, "bad_signature")
    assert shop.statuses() == [("awaiting_payment", "", 0)] * 2
    with shop.db.session() as s:
        assert s.exec(select(ProcessorEvent)).all() == []
    assert shop.deliver(event)["outcome"] == "paid"  # the genuine one still works


def test_declined_card_then_success_and_late_failure_event(shop: Shop) -> None:
    payment = shop.checkout()
    assert payment.intent_id
    declined = shop.stripe.confirm(payment.intent_id, card="4000000000000002")
    assert shop.deliver(declined)["outcome"] == "failed"
    assert shop.statuses() == [("awaiting_payment", "", 0)] * 2
    page = shop.client.get(f"/orders/checkout/{payment.id}").text
    assert "Your card was declined." in page and "payment-element" in page
    succeeded = shop.stripe.confirm(payment.intent_id)
    # delivered out of order: the success first, then the earlier failure arrives again (new event id)
    assert shop.deliver(succeeded)["outcome"] == "paid"
    late_failure = json.loads(declined)
    late_failure["id"] = "evt_late_failure"
    assert shop.deliver(json.dumps(late_failure))["outcome"] == "stale"
    assert shop.statuses() == [("paid", "", 0)] * 2
    assert len(shop.stripe.intents) == 1 and shop.stripe.refunds == []


def test_payment_after_the_window_closed_is_refunded_once(shop: Shop) -> None:
    payment = shop.checkout()
    assert payment.intent_id
    with shop.db.session() as s:
        cancelled = service.expire_unpaid(s, ranked_bids, utcnow() + timedelta(minutes=16), 15)
        assert len(cancelled) == 2
    event = shop.stripe.confirm(payment.intent_id)  # the buyer's card goes through a moment too late
    assert shop.deliver(event)["outcome"] == "refunded"
    # everything goes back, shipping included, one refund per order with its own key
    assert sorted(x["amount"] for x in shop.stripe.refunds) == [1500 + SHIPPING, 2100]
    keys = [p.idempotency_key for p in shop.stripe.posts("/v1/refunds")]
    assert sorted(keys) == sorted(f"liveshow-refund-order-{o.id}" for o in shop.orders)
    assert shop.statuses() == [("cancelled", "refunded", 2100), ("cancelled", "refunded", 1500 + SHIPPING)]
    replay = json.loads(event)
    replay["id"] = "evt_same_success_again"
    assert shop.deliver(json.dumps(replay))["outcome"] == "stale"
    assert len(shop.stripe.refunds) == 2


def test_stripe_is_not_imported_unless_configured(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from liveshow.app import create_app\n"
        "from pathlib import Path\n"
        "from liveshow.settings import Settings\n"
        f"create_app(Settings(data_dir=Path({str(tmp_path)!r}), secret_key='x', gc_tuning=False))\n"
        "assert 'stripe' not in sys.modules, 'stripe imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_failed_refund_is_shown_and_retried_once_with_a_new_key(shop: Shop) -> None:
    payment = shop.checkout()
    assert payment.intent_id
    assert shop.deliver(shop.stripe.confirm(payment.intent_id))["outcome"] == "paid"
    sign_in(shop.client, shop.app, shop.seller)
    shop.stripe.refuse_refunds = True
    order_id = shop.orders[0].id
    r = shop.client.post(f"/orders/{order_id}/cancel", data={"csrf_token": CSRF})
    assert r.status_code == 502 and "insufficient funds" in r.text  # a reason, not a crash
    assert shop.statuses()[0] == ("cancelled", "failed", 0)
    assert "Retry refund" in shop.client.get("/orders").text
    shop.stripe.refuse_refunds = False
    r = shop.client.post(
        f"/orders/{order_id}/retry-refund", data={"csrf_token": CSRF}, follow_redirects=False
    )
    assert r.status_code == 303
    assert shop.client.post(f"/orders/{order_id}/retry-refund", data={"csrf_token": CSRF}).status_code == 409
    assert shop.statuses()[0] == ("cancelled", "refunded", 2100)
    keys = [p.idempotency_key for p in shop.stripe.posts("/v1/refunds")]
    assert keys == [f"liveshow-refund-order-{order_id}", f"liveshow-refund-order-{order_id}-retry1"]
    assert [x["amount"] for x in shop.stripe.refunds] == [2100]
    # the buyer may not retry anything
    sign_in(shop.client, shop.app, shop.buyer)
    assert shop.client.post(f"/orders/{order_id}/retry-refund", data={"csrf_token": CSRF}).status_code == 403


def test_buyer_cancels_one_item_mid_checkout_then_pays(shop: Shop) -> None:
    payment = shop.checkout()
    assert payment.intent_id
    r = shop.client.post(
        f"/orders/{shop.orders[1].id}/cancel", data={"csrf_token": CSRF}, follow_redirects=False
    )
    assert r.status_code == 303 and shop.stripe.refunds == []  # nothing was paid yet
    # the PaymentIntent still asks for the whole bundle; when it is paid, the cancelled item goes back
    assert shop.deliver(shop.stripe.confirm(payment.intent_id))["outcome"] == "paid"
    assert shop.statuses() == [("paid", "", 0), ("cancelled", "refunded", 1500)]
    assert [x["amount"] for x in shop.stripe.refunds] == [1500]


def test_a_success_for_another_amount_marks_nothing_paid(shop: Shop) -> None:
    payment = shop.checkout()
    assert payment.intent_id
    shop.stripe.intents[payment.intent_id]["amount"] = 100  # not what we asked for
    assert shop.deliver(shop.stripe.confirm(payment.intent_id))["outcome"] == "mismatch"
    assert shop.statuses() == [("awaiting_payment", "", 0)] * 2
    with shop.db.session() as s:
        stored = s.get(Payment, payment.id)
        assert stored is not None and (stored.status, stored.last_error) == ("open", "amount mismatch")


def test_seller_connects_a_stripe_account_once(shop: Shop) -> None:
    newcomer = shop.world.viewers[2].id or 0  # sells nothing yet, has no connected account
    sign_in(shop.client, shop.app, newcomer)
    page = shop.client.get("/orders/money").text
    assert "Connect with Stripe" in page
    links = []
    for _ in range(2):
        r = shop.client.post(
            "/orders/money/stripe-connect", data={"csrf_token": CSRF}, follow_redirects=False
        )
        assert r.status_code == 303
        links.append(r.headers["location"])
    with shop.db.session() as s:
        row = s.get(SellerPayments, newcomer)
        assert row is not None and row.stripe_account.startswith("acct_")
    assert links == [f"https://connect.stripe.test/setup/{row.stripe_account}"] * 2
    [created] = shop.stripe.posts("/v1/accounts")  # the second visit reuses the account
    assert created.idempotency_key == f"liveshow-account-{newcomer}"
    assert created.params["type"] == "express"
    assert created.params["metadata"] == {"liveshow_seller_id": str(newcomer)}
    link = shop.stripe.posts("/v1/account_links")[0].params
    assert link["type"] == "account_onboarding" and link["return_url"].endswith("/orders/money")
    assert shop.client.post("/orders/money/stripe-connect", data={}).status_code == 403  # no CSRF
