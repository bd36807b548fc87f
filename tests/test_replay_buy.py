"""Buying from a replay: items not sold during the show, at their listing price, through the order service."""

from __future__ import annotations

from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.accounts.service import create_user
from liveshow.closet.models import Listing
from liveshow.orders.models import Order
from tests.test_replay import CSRF, context_of, record_show, sign_in_cookie


def orders(app: Starlette) -> list[Order]:
    with context_of(app).db.session() as session:
        return list(session.exec(select(Order)).all())


def test_buy_unsold_items_from_the_replay(client: TestClient, app: Starlette) -> None:
    recorded = record_show(client, app, seconds=1.0)
    context = context_of(app)
    with context.db.session() as session:
        buyer = create_user(session, "replayfan", "correct horse battery")
        stranger = create_user(session, "otherseller", "correct horse battery")
        foreign = Listing(seller_id=stranger.id, title="Not in this show", price_cents=900, quantity=1)
        session.add(foreign)
        session.commit()
        session.refresh(foreign)
    assert buyer.id is not None and foreign.id is not None and recorded.seller.id is not None
    page_url = f"/shows/{recorded.show_id}/replay"
    buy_url = f"{page_url}/buy"
    item = {"listing_id": str(recorded.listing_id), "csrf_token": CSRF}

    # anonymous: asked to sign in; a post without a session is refused, nothing bought
    page = client.get(page_url)
    assert "Sign in to buy" in page.text and 'action="' + buy_url not in page.text
    assert client.post(buy_url, data=item, follow_redirects=False).status_code == 403

    # the seller sees no Buy button and cannot buy their own item
    sign_in_cookie(client, app, recorded.seller.id)
    assert f'action="{buy_url}"' not in client.get(page_url).text
    resp = client.post(buy_url, data=item, follow_redirects=False)
    assert resp.status_code == 403 and "own item" in resp.text

    sign_in_cookie(client, app, buyer.id)
    page = client.get(page_url)
    assert f'action="{buy_url}"' in page.text and "$45.00" in page.text
    # bad input: a forged token, not an id, an item of another seller, a price in the form is ignored
    forged = client.post(buy_url, data={**item, "csrf_token": "nope"}, follow_redirects=False)
    assert forged.status_code == 403
    assert client.post(buy_url, data={**item, "listing_id": "abc"}).status_code == 400
    assert client.post(buy_url, data={"csrf_token": CSRF}).status_code == 400
    assert client.post(buy_url, data={**item, "listing_id": str(foreign.id)}).status_code == 404
    assert client.post("/shows/999999/replay/buy", data=item).status_code == 404
    assert orders(app) == []

    resp = client.post(buy_url, data={**item, "price_cents": "1"}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/orders"
    [order] = orders(app)
    assert (order.buyer_id, order.seller_id, order.listing_id) == (
        buyer.id,
        recorded.seller.id,
        recorded.listing_id,
    )
    assert (order.price_cents, order.source, order.show_id, order.status) == (
        4500,
        "replay",
        recorded.show_id,
        "awaiting_payment",
    )
    assert "The blue coat" in client.get("/orders").text

    # two units: the second sells, then it is gone from the replay and a third is refused
    assert client.post(buy_url, data=item, follow_redirects=False).status_code == 303
    assert f'data-listing-id="{recorded.listing_id}"' not in client.get(page_url).text
    resp = client.post(buy_url, data=item, follow_redirects=False)
    assert resp.status_code == 409 and "no longer for sale" in resp.text
    assert len(orders(app)) == 2
    with context.db.session() as session:
        listing = session.get(Listing, recorded.listing_id)
        assert listing is not None and listing.sold_count == 2 and listing.status == "sold"
