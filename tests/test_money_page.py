"""The seller's money page: sales, fees, shipping, net and refunds per show, the same figures as CSV,
and the payment settings form (shipping per bundle, Stripe account) refusing bad input with a reason."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from liveshow.errors import ValidationFailed
from liveshow.orders import service
from liveshow.orders.models import SellerPayments
from liveshow.orders.money_web import parse_settings
from liveshow.orders.providers import TestProvider
from tests.auction_fixtures import make_world
from tests.order_helpers import CSRF, orders_app, sign_in


def test_money_page_and_csv(tmp_path: Path, database_url: str) -> None:
    with orders_app(tmp_path, database_url, "test", platform_fee_bps=1000) as (app, client):
        db = app.state.ctx.db
        w = make_world(db, quantities=(5,))
        buyer, seller, listing = w.viewers[0].id or 0, w.seller.id or 0, w.listings[0].id or 0
        pay = TestProvider()
        with db.session() as s:
            a = service.create_order(s, buyer, listing, 2000, "auction", show_id=w.show_id)
            b = service.create_order(s, buyer, listing, 1001, "claim", show_id=w.show_id)
            c = service.create_order(s, buyer, listing, 700, "claim", show_id=w.show_id)
            service.create_order(s, buyer, listing, 300, "offer")  # outside a show, unpaid
            for order in (a, b, c):
                service.pay(s, order.id or 0, buyer, pay, fee_bps=1000)
            service.cancel(s, c.id or 0, seller, pay)  # refunded
        sign_in(client, app, seller)
        page = client.get("/orders/money")
        assert page.status_code == 200 and "Closet clear-out" in page.text and "Download CSV" in page.text
        # sales 30.01, fees 2.00 + 1.00 (rounded down), net 27.01, refunded 7.00
        for figure in ("$30.01", "$3.00", "$27.01", "$7.00", "outside a show"):
            assert figure in page.text
        r = client.get("/orders/money.csv")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(r.text)))
        assert rows[0] == [
            "show_id",
            "show",
            "orders",
            "sales",
            "fees",
            "shipping",
            "net",
            "refunded",
            "unpaid",
        ]
        assert rows[1] == [
            str(w.show_id),
            "Closet clear-out",
            "3",
            "30.01",
            "3.00",
            "0.00",
            "27.01",
            "7.00",
            "0.00",
        ]
        assert rows[2] == ["", "outside a show", "1", "0.00", "0.00", "0.00", "0.00", "0.00", "3.00"]
        assert rows[3] == ["", "TOTAL", "4", "30.01", "3.00", "0.00", "27.01", "7.00", "3.00"]
        # another seller's page is empty: no one sees someone else's money
        sign_in(client, app, buyer)
        assert "No sales yet." in client.get("/orders/money").text

        sign_in(client, app, seller)
        bad = client.post("/orders/money/settings", data={"csrf_token": CSRF, "shipping": "4,5"})
        assert bad.status_code == 400 and "4.50" in bad.text
        ok = client.post(
            "/orders/money/settings",
            data={"csrf_token": CSRF, "shipping": "4.5", "stripe_account": "acct_1Abc"},
            follow_redirects=False,
        )
        assert ok.status_code == 303
        with db.session() as s:
            row = s.get(SellerPayments, seller)
            assert row is not None and (row.shipping_cents, row.stripe_account) == (450, "acct_1Abc")
        assert client.post("/orders/money/settings", data={"shipping": "1"}).status_code == 403  # no CSRF


@pytest.mark.parametrize(
    ("shipping", "account", "expected"),
    [
        ("", "", (0, "")),
        ("0", "", (0, "")),
        ("4.5", "", (450, "")),
        ("12.05", "acct_9", (1205, "acct_9")),
        ("1000", "", (100_000, "")),
    ],
)
def test_parse_settings(shipping: str, account: str, expected: tuple[int, str]) -> None:
    assert parse_settings(shipping, account) == expected


@pytest.mark.parametrize(
    ("shipping", "account"),
    [("-1", ""), ("1.234", ""), ("abc", ""), ("1000.01", ""), ("1", "acct_"), ("1", "x")],
)
def test_parse_settings_refuses(shipping: str, account: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_settings(shipping, account)
