"""Search (listings, sellers, shows; filters; bounded, escaped input) and similar listings."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.social.search import like_pattern
from tests.test_social_support import act_as, app_ctx, make_listing, make_show, make_user

CLOSET = [
    ("Levi's trucker denim jacket", "Levi's", "outerwear", "M", 4500, "Classic blue washed denim jacket."),
    ("Vintage jean jacket with sherpa collar", "Wrangler", "outerwear", "L", 5200, "Warm jean jacket."),
    ("Leather strappy sandals", "Steve Madden", "shoes", "8", 3000, "Tan flat sandals for summer."),
    ("Floral midi wrap dress", "Reformation", "dresses", "S", 6800, "Silk floral print dress."),
    ("High-rise skinny jeans", "Levi's", "bottoms", "28", 3800, "Dark wash stretch denim."),
    ("Cashmere crewneck sweater", "Everlane", "tops", "M", 7000, "Soft grey cashmere knit."),
    ("Canvas tote bag", "Baggu", "bags", "", 1800, "Sturdy everyday tote."),
    ("White leather sneakers", "Veja", "shoes", "9", 9000, "Minimal white trainers."),
    ("100% silk scarf", "Hermes", "accessories", "", 15000, "Printed silk carré."),
]


def demo_closet(app: Starlette) -> tuple[Any, dict[str, Any]]:
    seller = make_user(app, "closet-queen")
    social = app_ctx(app).social
    assert social is not None
    items = {}
    for title, brand, category, size, price, desc in CLOSET:
        listing = make_listing(
            app, seller, title, price, brand=brand, category=category, size=size, description=desc
        )
        with app_ctx(app).db.session() as session:
            social.listing_saved(session, listing)
        items[title] = listing
    return seller, items


def titles(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [x["title"] for x in resp.json()["listings"]]


def test_search_listings_with_filters(app: Starlette, client: TestClient) -> None:
    demo_closet(app)
    assert set(titles(client.get("/api/search?q=jacket"))) == {
        "Levi's trucker denim jacket",
        "Vintage jean jacket with sherpa collar",
    }
    assert titles(client.get("/api/search?q=JACKET+levi")) == ["Levi's trucker denim jacket"]
    assert set(titles(client.get("/api/search?brand=levi"))) == {
        "Levi's trucker denim jacket",
        "High-rise skinny jeans",
    }
    assert titles(client.get("/api/search?category=shoes&max_price=50")) == ["Leather strappy sandals"]
    assert titles(client.get("/api/search?category=shoes&min_price=50.00")) == ["White leather sneakers"]
    assert titles(client.get("/api/search?size=m&category=tops")) == ["Cashmere crewneck sweater"]
    assert titles(client.get("/api/search?min_price=45&max_price=45")) == ["Levi's trucker denim jacket"]
    assert len(titles(client.get("/api/search?q=e&limit=3"))) == 3
    # LIKE wildcards are literal: "100%" finds the scarf only, "%" alone finds nothing else.
    assert titles(client.get("/api/search", params={"q": "100%"})) == ["100% silk scarf"]
    assert titles(client.get("/api/search", params={"q": "_"})) == []
    assert like_pattern("50%_off\\") == "%50\\%\\_off\\\\%"


def test_search_sellers_and_shows(app: Starlette, client: TestClient) -> None:
    seller, _ = demo_closet(app)
    make_show(app, seller, "Denim night", state="live")
    make_show(app, seller, "Denim brunch", state="scheduled")
    make_show(app, seller, "Denim archive", state="ended")
    data = client.get("/api/search?q=closet-queen").json()
    assert [s["username"] for s in data["sellers"]] == ["closet-queen"]
    # A seller's name finds their shows too.
    assert {k: len(v) for k, v in data["shows"].items()} == {"live": 1, "upcoming": 1, "replays": 1}
    data = client.get("/api/search?q=denim").json()
    assert [s["title"] for s in data["shows"]["live"]] == ["Denim night"]
    assert [s["title"] for s in data["shows"]["upcoming"]] == ["Denim brunch"]
    assert [s["title"] for s in data["shows"]["replays"]] == ["Denim archive"]
    page = client.get("/search?q=denim&category=outerwear")
    assert page.status_code == 200 and "Denim night" in page.text and "trucker denim jacket" in page.text


@pytest.mark.parametrize(
    "query",
    [
        {"q": "x" * 101},
        {"category": "weapons"},
        {"min_price": "-5"},
        {"min_price": "abc"},
        {"min_price": "1.234"},
        {"min_price": "NaN"},
        {"max_price": "1e12"},
        {"min_price": "50", "max_price": "10"},
        {"limit": "500"},
        {"limit": "-1"},
        {"offset": "99999"},
        {"size": "x" * 21},
        {"brand": "b" * 61},
    ],
)
def test_search_bad_input(client: TestClient, query: dict[str, str]) -> None:
    resp = client.get("/api/search", params=query)
    assert resp.status_code == 400 and resp.json()["reason"]
    assert client.get("/search", params=query).status_code == 400


def test_search_page_escapes_input(client: TestClient) -> None:
    resp = client.get("/search", params={"q": "<script>alert(1)</script>"})
    assert resp.status_code == 200
    assert "<script>alert(1)</script>" not in resp.text and "&lt;script&gt;" in resp.text


def test_similar_neighbours_make_sense(app: Starlette, client: TestClient) -> None:
    _seller, items = demo_closet(app)
    jacket = items["Levi's trucker denim jacket"]
    near = titles(client.get(f"/api/listings/{jacket.id}/similar?limit=8"))
    assert near.index("Vintage jean jacket with sherpa collar") < near.index("Leather strappy sandals")
    # The other jacket (and the Levi's denim jeans) come before anything unrelated.
    assert "Vintage jean jacket with sherpa collar" in near[:2]
    for unrelated in ("Leather strappy sandals", "Canvas tote bag", "Floral midi wrap dress"):
        assert near.index(unrelated) > 2
    assert "Levi's trucker denim jacket" not in near  # never itself
    sandals = items["Leather strappy sandals"]
    assert titles(client.get(f"/api/listings/{sandals.id}/similar?limit=1")) == ["White leather sneakers"]

    # Shop the look: only the same seller's closet; a sold item drops out.
    other = make_user(app, "someone-else")
    twin = make_listing(app, other, "Levi's denim trucker jacket", 4000, brand="Levi's", category="outerwear")
    social = app_ctx(app).social
    assert social is not None
    with app_ctx(app).db.session() as session:
        social.listing_saved(session, twin)
    assert titles(client.get(f"/api/listings/{jacket.id}/similar?limit=1")) == ["Levi's denim trucker jacket"]
    look = titles(client.get(f"/api/listings/{jacket.id}/similar?scope=seller&limit=3"))
    assert "Levi's denim trucker jacket" not in look and len(look) == 3
    with app_ctx(app).db.session() as session:
        row = session.get(type(twin), twin.id)
        assert row is not None
        row.status = "sold"
        session.add(row)
        session.commit()
    assert "Levi's denim trucker jacket" not in titles(client.get(f"/api/listings/{jacket.id}/similar"))

    # Bad input.
    assert client.get(f"/api/listings/{jacket.id}/similar?scope=everyone").status_code == 400
    assert client.get(f"/api/listings/{jacket.id}/similar?limit=1000").status_code == 400
    assert client.get("/api/listings/424242/similar").status_code == 404
    act_as(client, None)


def test_listing_saved_skips_unchanged_text_and_backfill_fills_gaps(app: Starlette) -> None:
    seller = make_user(app, "seller1")
    social = app_ctx(app).social
    assert social is not None
    a = make_listing(app, seller, "Red wool scarf", brand="Acne")
    make_listing(app, seller, "Red wool scarf", brand="Acne")  # same text: embedded once in the backfill
    make_listing(app, seller, "Blue rain boots", category="shoes")
    with app_ctx(app).db.session() as session:
        assert social.similar.listing_saved(session, a) is True
        assert social.similar.listing_saved(session, a) is False
    assert social.similar.backfill() == 2
    assert social.similar.backfill() == 0


def test_listings_embedded_when_the_closet_saves_them(app: Starlette, client: TestClient) -> None:
    """No call from the closet needed: a committed insert or edit is embedded in the background."""
    import time

    from liveshow.closet.models import Listing
    from liveshow.social.models import ListingEmbedding

    seller = make_user(app, "seller1")
    context = app_ctx(app)
    coat = make_listing(app, seller, "Camel wool coat", brand="Max Mara", category="outerwear")
    make_listing(app, seller, "Black wool coat", brand="COS", category="outerwear")
    make_listing(app, seller, "Rubber rain boots", category="shoes")

    def embedded() -> dict[int, str]:
        with context.db.session() as session:
            return {e.listing_id: e.text_hash for e in session.exec(select(ListingEmbedding))}

    deadline = time.monotonic() + 10
    while len(embedded()) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(embedded()) == 3
    before = embedded()[coat.id or 0]
    assert titles(client.get(f"/api/listings/{coat.id}/similar?limit=1")) == ["Black wool coat"]

    with context.db.session() as session:  # an edit re-embeds; a rolled-back edit does not
        row = session.get(Listing, coat.id)
        assert row is not None
        row.title = "Camel wool coat, double breasted"
        session.add(row)
        session.commit()
    deadline = time.monotonic() + 10
    while embedded()[coat.id or 0] == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert embedded()[coat.id or 0] != before


def test_neighbours_on_the_demo_closet(app: Starlette, client: TestClient) -> None:
    """On the real demo closet (`liveshow demo`), the nearest items are the ones a shopper would expect."""
    from liveshow.closet.models import Listing
    from liveshow.demo import load_demo

    context = app_ctx(app)
    assert context.social is not None
    load_demo(context.db, context.settings, password="demo password 1")
    context.social.similar.backfill()
    with context.db.session() as session:
        ids = {x.title: x.id for x in session.exec(select(Listing))}

    def near(title: str) -> list[str]:
        return titles(client.get(f"/api/listings/{ids[title]}/similar?limit=12"))

    jacket = near("Madewell oversized denim jacket")
    assert jacket.index("Patagonia Better Sweater fleece jacket") < jacket.index(
        "Longchamp Le Pliage tote, navy"
    )
    assert jacket.index("Levi's 501 high-rise jeans, medium wash") < jacket.index("Wool felt fedora hat")
    assert near("Nike Air Force 1 '07 sneakers")[0] == "Dr. Martens 1460 leather boots"
    tee = near("Breton striped cotton tee")
    assert tee[0] == "Everlane organic crew tee, 3 colours"


def test_a_hook_another_app_left_behind_takes_none_of_this_apps_listings(
    tmp_path: Any, sqlite_url: str
) -> None:
    """The hook's session events are process-wide. An app whose startup failed before it could stop
    (the database down at start, in the fault tests) left its hook listening, and its after-commit took
    every later app's saved listings: the CI run saw nothing embedded."""
    import asyncio
    import time

    from liveshow.app import create_app
    from liveshow.db import Database
    from liveshow.social.listing_hook import ListingHook
    from liveshow.social.models import ListingEmbedding
    from tests.conftest import make_settings

    other = Database(sqlite_url)
    stale = ListingHook(other, index=None)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    loop.run_until_complete(stale.start())  # listening, never stopped
    try:
        app = create_app(make_settings(tmp_path, sqlite_url))
        with TestClient(app, base_url="http://127.0.0.1"):
            seller = make_user(app, "seller1")
            make_listing(app, seller, "Camel wool coat", brand="Max Mara", category="outerwear")
            context = app_ctx(app)

            def embedded() -> int:
                with context.db.session() as session:
                    return len(list(session.exec(select(ListingEmbedding))))

            deadline = time.monotonic() + 10
            while embedded() < 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert embedded() == 1
    finally:
        loop.run_until_complete(stale.stop())
        loop.close()
        other.close()
