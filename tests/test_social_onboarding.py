"""The first-sale path: progress from real data, sharing, the celebration and the share card."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from PIL import Image
from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.closet.models import Listing
from liveshow.shows.models import Show
from tests.test_notices import wait_for_notices
from tests.test_social_support import act_as, app_ctx, make_listing, make_show, make_user


def steps(client: TestClient) -> dict[str, bool]:
    return {s["key"]: s["done"] for s in client.get("/api/sell/progress").json()["steps"]}


def test_first_sale_path_progress(app: Starlette, client: TestClient) -> None:
    seller, other = make_user(app, "newbie"), make_user(app, "other")
    h = act_as(client, seller)
    assert steps(client) == {"list": False, "schedule": False, "share": False, "live": False, "sale": False}
    items = [make_listing(app, seller, f"Item {i}") for i in range(4)]
    assert steps(client)["list"] is False
    items.append(make_listing(app, seller, "Item 5"))
    assert steps(client)["list"] is True

    show = make_show(app, seller, "My first show")
    assert steps(client)["schedule"] is True and steps(client)["share"] is False
    # Only the show's seller can mark it shared; bad ids refused.
    h_other = act_as(client, other)
    assert client.post(f"/api/shows/{show.id}/shared", headers=h_other).status_code == 403
    h = act_as(client, seller)
    assert client.post("/api/shows/999999/shared", headers=h).status_code == 404
    assert client.post(f"/api/shows/{show.id}/shared").status_code == 403  # no CSRF
    assert client.post(f"/api/shows/{show.id}/shared", headers=h).json() == {"recorded": True}
    assert client.post(f"/api/shows/{show.id}/shared", headers=h).json() == {"recorded": False}
    assert steps(client)["share"] is True

    with app_ctx(app).db.session() as session:
        row = session.get(Show, show.id)
        assert row is not None
        row.state, row.went_live_at = "live", datetime.now(UTC)
        session.add(row)
        session.commit()
    assert steps(client)["live"] is True and steps(client)["sale"] is False
    page = client.get("/sell/start")
    assert page.status_code == 200 and "4 of 5 done" in page.text

    # The first sale (an order marks a unit sold): announced, celebrated once, share card.
    with app_ctx(app).db.session() as session:
        sold = session.get(Listing, items[2].id)
        assert sold is not None
        sold.sold_count = 1
        session.add(sold)
        session.commit()
    context = app_ctx(app)
    client.portal.call(
        context.showlog.publish, show.id, "order.created", {"listing_id": items[2].id, "order_id": 1}
    )
    client.portal.call(context.social.watcher.on_event, show.id, _last(client, context, show.id))  # type: ignore[union-attr]
    [notice] = wait_for_notices(app, seller.id, "sale")
    assert "first sale" in notice.text and notice.url == "/sell/start"
    assert steps(client)["sale"] is True
    page = client.get("/sell/start")
    assert "You made your first sale!" in page.text and "5 of 5 done" in page.text
    assert "You made your first sale!" not in client.get("/sell/start").text  # celebrated once

    card = client.get(f"/api/listings/{items[2].id}/share-card.png")
    assert card.status_code == 200 and card.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(card.content))
    assert image.size == (1200, 630)
    # Share cards: the seller's own sold listings only.
    assert client.get(f"/api/listings/{items[0].id}/share-card.png").status_code == 404
    act_as(client, other)
    assert client.get(f"/api/listings/{items[2].id}/share-card.png").status_code == 403
    act_as(client, None)
    assert client.get(f"/api/listings/{items[2].id}/share-card.png").status_code == 401
    assert client.get("/sell/start", follow_redirects=False).status_code == 303


def _last(client: TestClient, context: object, show_id: int | None) -> object:
    from liveshow.bus import Event

    async def go() -> Event:
        events = await context.bus.history(f"show:{show_id}", 0)  # type: ignore[attr-defined]
        return events[-1]

    return client.portal.call(go)
