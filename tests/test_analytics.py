"""Seller analytics against a scripted show: figures and charts from the archived events and samples."""

from __future__ import annotations

import importlib
import time

from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.social.charts import line_chart
from tests.test_social_support import (
    act_as,
    app_ctx,
    make_listing,
    make_show,
    make_user,
    wait_until_watched,
)


def test_scripted_show_figures_and_charts(app: Starlette, client: TestClient) -> None:
    seller, ann, bob = make_user(app, "seller1"), make_user(app, "ann"), make_user(app, "bob")
    coat = make_listing(app, seller, "Coat", 5000)
    boots = make_listing(app, seller, "Boots", 3000)
    show = make_show(app, seller, "Scripted show", state="live")
    context = app_ctx(app)
    social = context.social
    assert social is not None
    social.watcher.sample_seconds = 0  # keep every sample of the script
    wait_until_watched(app, show.id)

    def publish(type_: str, data: dict[str, object]) -> None:
        client.portal.call(context.showlog.publish, show.id, type_, data)

    for count in (3, 10):
        publish("presence", {"count": count})
    publish("lot.opened", {"lot": {"lot_no": 1, "listing_id": coat.id, "kind": "auction"}})
    for bidder in (ann.id, bob.id, ann.id, bob.id):
        publish("bid.accepted", {"lot_no": 1, "bidder_id": bidder})
    publish("presence", {"count": 25})
    publish(
        "lot.closed",
        {"lot_no": 1, "listing_id": coat.id, "outcome": "sold", "winner_id": bob.id, "price_cents": 6200},
    )
    publish("lot.opened", {"lot": {"lot_no": 2, "listing_id": boots.id, "kind": "claim"}})
    publish("claim.accepted", {"lot_no": 2, "buyer_id": ann.id, "quantity": 1})
    publish("claim.accepted", {"lot_no": 2, "buyer_id": bob.id, "quantity": 1})
    publish(
        "lot.closed",
        {"lot_no": 2, "listing_id": boots.id, "outcome": "sold", "buyer_id": ann.id, "price_cents": 3000},
    )
    publish("lot.opened", {"lot": {"lot_no": 3, "listing_id": coat.id, "kind": "claim"}})  # shown again
    publish("presence", {"count": 18})
    try:
        orders = importlib.import_module("liveshow.orders.service")
    except ModuleNotFoundError:
        orders = None
    if orders is not None:  # with the order service, orders are the truth for sales
        with context.db.session() as session:
            orders.create_order(session, bob.id, coat.id, 6200, "auction", show_id=show.id)
            orders.create_order(session, ann.id, boots.id, 3000, "claim", show_id=show.id)
    client.portal.call(context.showlog.flush)
    deadline = time.monotonic() + 5
    h = act_as(client, seller)
    while True:
        data = client.get(f"/api/shows/{show.id}/analytics", headers=h).json()
        if len(data["viewers"]) == 4 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [v for _, v in data["viewers"]] == [3, 10, 25, 18]
    assert data["peak_viewers"] == 25
    assert (data["items_shown"], data["bids"], data["claims"]) == (2, 4, 2)
    assert (data["sales"], data["buyers"], data["revenue_cents"]) == (2, 2, 9200)
    assert data["conversion_percent"] == 8.0
    assert [v for _, v in data["revenue"]] == [6200, 9200]

    page = client.get("/sell/analytics")
    assert page.status_code == 200
    assert page.text.count('<svg class="chart"') == 2
    assert "Viewers over time" in page.text and "$92.00" in page.text
    assert "<script" not in page.text.split("<main")[1].split("</main>")[0]  # charts need no JS

    act_as(client, ann)
    assert client.get(f"/api/shows/{show.id}/analytics").status_code == 403
    assert client.get("/api/shows/424242/analytics").status_code == 404


def test_chart_escapes_and_handles_no_data() -> None:
    assert "No data yet" in line_chart([], "Viewers <b>")
    svg = line_chart([(0, 1), (60, 5)], "A & <b>")
    assert "A &amp; &lt;b&gt;" in svg and "<b>" not in svg and "polyline" in svg
