"""Offers: only the seller, only to likers, within (0, list price]; accept into an order; expired or
used offers refused; a race with a live sale of the same last unit has exactly one winner."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.clock import utcnow
from liveshow.social.models import Offer
from tests.test_notices import wait_for_notices
from tests.test_social_support import Actor, act_as, app_ctx, make_listing, make_user


def setup_liked(app: Starlette, client: TestClient) -> tuple[Actor, Actor, Actor, Any]:
    seller, ann, bob = make_user(app, "seller1"), make_user(app, "ann"), make_user(app, "bob")
    coat = make_listing(app, seller, "Blue wool coat", 8000)
    client.post(f"/api/listings/{coat.id}/like", json={"liked": True}, headers=act_as(client, ann))
    return seller, ann, bob, coat


def test_offer_rules_and_notice(app: Starlette, client: TestClient) -> None:
    seller, ann, bob, coat = setup_liked(app, client)
    url = f"/api/listings/{coat.id}/offers"
    good = {"price_cents": 6000, "minutes": 60}

    h = act_as(client, bob)  # not the seller
    assert client.post(url, json=good, headers=h).status_code == 403
    h = act_as(client, seller)
    assert client.post(url, json=good).status_code == 403  # no CSRF
    for bad in (
        {"price_cents": 0, "minutes": 60},
        {"price_cents": -100, "minutes": 60},
        {"price_cents": 8001, "minutes": 60},  # above list price
        {"price_cents": 60.5, "minutes": 60},
        {"price_cents": True, "minutes": 60},
        {"price_cents": 6000, "minutes": 1},
        {"price_cents": 6000, "minutes": 100000},
        {"price_cents": 6000},
        {"price_cents": 6000, "minutes": 60, "to": "everyone"},
    ):
        resp = client.post(url, json=bad, headers=h)
        assert resp.status_code == 400, bad
    resp = client.post(url, json={**good, "to": [bob.id]}, headers=h)  # bob never liked it
    assert resp.status_code == 403 and resp.json()["not_likers"] == [bob.id]
    assert client.post("/api/listings/77777/offers", json=good, headers=h).status_code == 404

    resp = client.post(url, json=good, headers=h)
    assert resp.status_code == 201
    [offer] = resp.json()["offers"]
    assert offer["buyer_id"] == ann.id and offer["price_cents"] == 6000 and offer["status"] == "open"
    [notice] = wait_for_notices(app, ann.id, "offer")
    assert "$60.00" in notice.text and notice.url == "/offers"
    assert [o["id"] for o in client.get(url).json()["offers"]] == [offer["id"]]

    h = act_as(client, ann)
    assert [o["id"] for o in client.get("/api/offers").json()["offers"]] == [offer["id"]]
    assert client.get(url).status_code == 403  # the seller's view only
    page = client.get("/offers")
    assert page.status_code == 200 and "Accept offer" in page.text
    # Someone else's offer is not theirs to accept.
    h_bob = act_as(client, bob)
    assert client.post(f"/api/offers/{offer['id']}/accept", headers=h_bob).status_code == 404


def test_expired_and_used_offers_refused(app: Starlette, client: TestClient) -> None:
    seller, ann, _bob, coat = setup_liked(app, client)
    h = act_as(client, seller)
    [offer] = client.post(
        f"/api/listings/{coat.id}/offers", json={"price_cents": 5000, "minutes": 5}, headers=h
    ).json()["offers"]
    with app_ctx(app).db.session() as session:
        row = session.get(Offer, offer["id"])
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)
        session.commit()
    h = act_as(client, ann)
    resp = client.post(f"/api/offers/{offer['id']}/accept", headers=h)
    assert resp.status_code == 409 and resp.json()["error"] == "offer_expired"
    assert client.get("/api/offers").json()["offers"] == []

    h = act_as(client, seller)
    [again] = client.post(
        f"/api/listings/{coat.id}/offers", json={"price_cents": 5000, "minutes": 60}, headers=h
    ).json()["offers"]
    with app_ctx(app).db.session() as session:
        row = session.get(Offer, again["id"])
        assert row is not None
        row.status = "accepted"
        session.add(row)
        session.commit()
    h = act_as(client, ann)
    resp = client.post(f"/api/offers/{again['id']}/accept", headers=h)
    assert resp.status_code == 409 and resp.json()["error"] == "offer_used"


def test_accept_creates_order_once(app: Starlette, client: TestClient) -> None:
    orders = pytest.importorskip("liveshow.orders.models")
    seller, ann, _bob, coat = setup_liked(app, client)
    h = act_as(client, seller)
    [offer] = client.post(
        f"/api/listings/{coat.id}/offers", json={"price_cents": 6500, "minutes": 60}, headers=h
    ).json()["offers"]
    h = act_as(client, ann)
    resp = client.post(f"/api/offers/{offer['id']}/accept", headers=h)
    assert resp.status_code == 200, resp.text
    order_id = resp.json()["order_id"]
    with app_ctx(app).db.session() as session:
        order = session.get(orders.Order, order_id)
        assert order is not None
        assert (order.buyer_id, order.listing_id, order.price_cents, order.source) == (
            ann.id,
            coat.id,
            6500,
            "offer",
        )
    assert client.post(f"/api/offers/{offer['id']}/accept", headers=h).json()["error"] == "offer_used"


def test_offer_races_live_sale_of_last_unit(app: Starlette, client: TestClient) -> None:
    service = pytest.importorskip("liveshow.orders.service")
    seller, ann, bob, coat = setup_liked(app, client)
    h = act_as(client, seller)
    [offer] = client.post(
        f"/api/listings/{coat.id}/offers", json={"price_cents": 6000, "minutes": 60}, headers=h
    ).json()["offers"]
    context = app_ctx(app)
    from liveshow.social import offers

    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def live_claim() -> None:
        barrier.wait()
        try:
            with context.db.session() as session:
                results["claim"] = service.create_order(session, bob.id, coat.id, 8000, "claim")
        except Exception as exc:
            results["claim"] = exc

    def accept_offer() -> None:
        barrier.wait()
        try:
            with context.db.session() as session:
                results["offer"] = offers.accept(session, ann.user, offer["id"])
        except Exception as exc:
            results["offer"] = exc

    threads = [threading.Thread(target=live_claim), threading.Thread(target=accept_offer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [k for k, v in results.items() if not isinstance(v, Exception)]
    assert len(winners) == 1, results
    with context.db.session() as session:
        from sqlmodel import select

        orders = list(session.exec(select(service.Order).where(service.Order.listing_id == coat.id)))
        assert len(orders) == 1
        row = session.get(Offer, offer["id"])
        assert row is not None
        # The offer is accepted only if its order won; otherwise it is left open (and the unit is gone).
        assert (row.status == "accepted") == (winners == ["offer"])
