"""Honest providers: "manual" (the seller is paid outside liveshow and confirms it) and "test" (the
demo's button says no money moves); the server refuses "test" unless allowed, and any unknown or
half-configured provider, at startup."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveshow.app import create_app
from liveshow.orders import service
from liveshow.orders.models import Order
from liveshow.orders.providers import SettingsError, check_settings, provider_name
from tests.auction_fixtures import make_world
from tests.conftest import make_settings
from tests.order_helpers import CSRF, orders_app, sign_in

TEST_LABEL = "Test payment (no money moves)"


def test_startup_refuses_the_test_provider_unless_allowed(tmp_path: Path, sqlite_url: str) -> None:
    with pytest.raises(SettingsError, match="LIVESHOW_ALLOW_TEST_PAYMENTS"):
        create_app(make_settings(tmp_path, sqlite_url, payment_provider="test"))
    with pytest.raises(SettingsError, match="use one of"):
        create_app(make_settings(tmp_path, sqlite_url, payment_provider="paypal"))
    with pytest.raises(
        SettingsError, match="LIVESHOW_STRIPE_WEBHOOK_SECRET, LIVESHOW_STRIPE_PUBLISHABLE_KEY"
    ):
        create_app(make_settings(tmp_path, sqlite_url, stripe_secret_key="sk_test_x"))
    with pytest.raises(SettingsError, match=r"needs LIVESHOW_STRIPE_PUBLISHABLE_KEY\.$"):
        create_app(
            make_settings(
                tmp_path, sqlite_url, stripe_secret_key="sk_test_x", stripe_webhook_secret="whsec_x"
            )
        )
    allowed = make_settings(tmp_path, sqlite_url, payment_provider="test", allow_test_payments=True)
    assert check_settings(allowed) == "test"
    # nothing configured: manual, never a make-believe charge
    assert provider_name(make_settings(tmp_path, sqlite_url)) == "manual"
    assert provider_name(make_settings(tmp_path, sqlite_url, stripe_secret_key="sk")) == "stripe"


def test_manual_provider_seller_confirms_payment(tmp_path: Path, database_url: str) -> None:
    with orders_app(tmp_path, database_url, "manual") as (app, client):
        db = app.state.ctx.db
        w = make_world(db, quantities=(1,))
        buyer, seller = w.viewers[0].id or 0, w.seller.id or 0
        with db.session() as s:
            order = service.create_order(s, buyer, w.listings[0].id or 0, 1500, "claim", show_id=w.show_id)
        sign_in(client, app, buyer)
        page = client.get("/orders").text
        assert "Pay the seller directly" in page and f"/orders/{order.id}/pay" not in page
        assert TEST_LABEL not in page
        # a forged pay request is refused with a reason, and nothing changes
        r = client.post(f"/orders/{order.id}/pay", data={"csrf_token": CSRF})
        assert r.status_code == 409 and "outside liveshow" in r.text
        assert client.post(f"/orders/{order.id}/confirm-paid", data={"csrf_token": CSRF}).status_code == 403
        with db.session() as s:
            assert s.get(Order, order.id).status == "awaiting_payment"  # type: ignore[union-attr]
        sign_in(client, app, seller)
        assert "I was paid" in client.get("/orders").text
        r = client.post(f"/orders/{order.id}/confirm-paid", data={"csrf_token": CSRF}, follow_redirects=False)
        assert r.status_code == 303
        assert client.post(f"/orders/{order.id}/confirm-paid", data={"csrf_token": CSRF}).status_code == 409
        r = client.post(
            f"/orders/{order.id}/ship",
            data={"csrf_token": CSRF, "carrier": "USPS", "tracking_number": "9400 1000"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        with db.session() as s:
            stored = s.get(Order, order.id)
            assert stored is not None
            assert (stored.status, stored.payment_ref, stored.carrier, stored.tracking_number) == (
                "shipped",
                "manual",
                "USPS",
                "9400 1000",
            )
        sign_in(client, app, buyer)
        assert "USPS 9400 1000" in client.get("/orders").text


def test_test_provider_says_no_money_moves(tmp_path: Path, database_url: str) -> None:
    with orders_app(tmp_path, database_url, "test") as (app, client):
        db = app.state.ctx.db
        w = make_world(db, quantities=(2,))
        buyer, seller = w.viewers[0].id or 0, w.seller.id or 0
        with db.session() as s:
            order = service.create_order(s, buyer, w.listings[0].id or 0, 1500, "claim", show_id=w.show_id)
        sign_in(client, app, buyer)
        page = client.get("/orders").text
        assert TEST_LABEL in page and "no money moves" in page and ">Pay<" not in page
        r = client.post(f"/orders/{order.id}/pay", data={"csrf_token": CSRF}, follow_redirects=False)
        assert r.status_code == 303
        # the seller cannot claim a test payment as cash received
        sign_in(client, app, seller)
        assert "I was paid" not in client.get("/orders").text
        with db.session() as s:
            stored = s.get(Order, order.id)
            assert stored is not None and stored.status == "paid"
            assert stored.payment_ref.startswith("test_")
        # the seller cancels the paid order: refunded once
        r = client.post(f"/orders/{order.id}/cancel", data={"csrf_token": CSRF}, follow_redirects=False)
        assert r.status_code == 303
        with db.session() as s:
            stored = s.get(Order, order.id)
            assert stored is not None
            assert (stored.status, stored.refund_status, stored.refunded_cents) == (
                "cancelled",
                "refunded",
                1500,
            )
        assert '<span class="muted refund">refunded' in client.get("/orders").text
