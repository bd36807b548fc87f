"""GET /api/orders: a buyer's and a seller's orders as JSON, paged, money in integer cents; bad
parameters get a 400 with a reason, no credentials a 401."""

from __future__ import annotations

from pathlib import Path

from liveshow.accounts.models import User
from liveshow.accounts.service import issue_token
from liveshow.orders import service
from liveshow.orders.providers import TestProvider
from tests.auction_fixtures import make_world
from tests.order_helpers import orders_app, sign_in


def test_orders_json_for_buyer_and_seller(tmp_path: Path, database_url: str) -> None:
    with orders_app(tmp_path, database_url, "test", platform_fee_bps=250) as (app, client):
        db = app.state.ctx.db
        w = make_world(db, quantities=(3,))
        buyer, other, seller = w.viewers[0].id or 0, w.viewers[1].id or 0, w.seller.id or 0
        listing = w.listings[0].id or 0
        with db.session() as s:
            first = service.create_order(s, buyer, listing, 2000, "auction", show_id=w.show_id)
            second = service.create_order(s, buyer, listing, 999, "claim", show_id=w.show_id)
            theirs = service.create_order(s, other, listing, 500, "offer")
            service.pay(s, first.id or 0, buyer, TestProvider(), fee_bps=250)
            service.mark_shipped(s, first.id or 0, seller, carrier="UPS", tracking_number="1Z99")

        r = client.get("/api/orders")
        assert r.status_code == 401 and r.json()["error"] == "not_authenticated"

        sign_in(client, app, buyer)
        body = client.get("/api/orders").json()
        assert body["role"] == "buyer" and body["next"] is None
        assert [o["id"] for o in body["orders"]] == [second.id, first.id]  # newest first, only theirs
        shipped = body["orders"][1]
        assert {
            k: shipped[k] for k in ("status", "source", "unit", "price_cents", "carrier", "tracking_number")
        } == {
            "status": "shipped",
            "source": "auction",
            "unit": 1,
            "price_cents": 2000,
            "carrier": "UPS",
            "tracking_number": "1Z99",
        }
        assert shipped["listing"] == {"id": listing, "title": w.listings[0].title}
        assert shipped["show"] == {"id": w.show_id, "title": w.show.title}
        assert shipped["seller"] == w.seller.username and shipped["paid_at"].endswith("Z")
        assert "fee_cents" not in shipped  # the platform's fee is the seller's business
        assert body["orders"][0]["status"] == "awaiting_payment"

        # paging: one at a time, following "next"
        page = client.get("/api/orders?limit=1").json()
        assert [o["id"] for o in page["orders"]] == [second.id]
        page = client.get(page["next"]).json()
        assert [o["id"] for o in page["orders"]] == [first.id] and page["next"] is None

        # bad parameters: a reason, never a 500
        for query in ("role=admin", "limit=0", "limit=201", "limit=x", "before=-3"):
            r = client.get(f"/api/orders?{query}")
            assert r.status_code == 400 and r.json()["reason"], query

        sign_in(client, app, seller)
        sold = client.get("/api/orders?role=seller").json()["orders"]
        assert [o["id"] for o in sold] == [theirs.id, second.id, first.id]
        paid = sold[2]
        assert (paid["price_cents"], paid["fee_cents"], paid["net_cents"]) == (2000, 50, 1950)
        assert (sold[1]["fee_cents"], sold[1]["net_cents"]) == (0, 0)  # not paid yet
        assert sold[0]["show"] is None and sold[0]["buyer"] == w.viewers[1].username

        # an integration uses an API token instead of the cookie
        client.cookies.clear()
        with db.session() as s:
            user = s.get(User, seller)
            assert user is not None
            token = issue_token(s, user)
        r = client.get("/api/orders?role=seller", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and len(r.json()["orders"]) == 3
