"""Headless Chromium: follow a seller, get the go-live notice, like an item, accept an offer."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from liveshow.app import create_app
from liveshow.shows.models import Show
from tests.conftest import LiveServer, make_settings
from tests.test_social_support import app_ctx, make_listing, make_show, make_user

pytestmark = pytest.mark.browser


@pytest.fixture
def social_server(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[Starlette, LiveServer]]:
    app = create_app(make_settings(tmp_path, sqlite_url))
    server = LiveServer(app).start()
    yield app, server
    server.stop()


def test_follow_live_notice_like_and_offer(social_server: tuple[Starlette, LiveServer], page: Any) -> None:
    app, server = social_server
    seller, ann = make_user(app, "closet-queen"), make_user(app, "ann")
    coat = make_listing(app, seller, "Blue wool coat", 8000, brand="Acne", category="outerwear")
    page.context.add_cookies([{"name": "liveshow_session", "value": ann.cookie, "url": server.url}])

    # Follow the seller from search.
    page.goto(f"{server.url}/search?q=closet-queen")
    page.get_by_role("button", name="Follow").click()
    page.get_by_role("button", name="Following").wait_for()
    assert page.locator('[data-follower-count="closet-queen"]').inner_text() == "1"

    # The seller goes live: the bell's toast says so, the badge counts it.
    show = make_show(app, seller, "Coat season", state="scheduled")
    with app_ctx(app).db.session() as session:
        row = session.get(Show, show.id)
        assert row is not None
        row.state, row.went_live_at = "live", datetime.now(UTC)
        session.add(row)
        session.commit()
    toast = page.locator(".social-toast", has_text="is live now")
    toast.wait_for(timeout=15000)
    assert "Coat season" in toast.inner_text()
    assert page.locator("[data-unread-badge]").inner_text() in ("1", "2")

    # Like the coat.
    page.goto(f"{server.url}/search?q=coat")
    like = page.locator(f'[data-like-listing="{coat.id}"]')
    like.click()
    page.wait_for_function(
        f"document.querySelector('[data-like-listing=\"{coat.id}\"]').getAttribute('aria-pressed') === 'true'"
    )
    assert like.locator("[data-like-count]").inner_text() == "1"

    # The seller sends the liker an offer; the liker accepts it on the offers page.
    with httpx.Client(base_url=server.url, cookies={"liveshow_session": seller.cookie}) as seller_http:
        resp = seller_http.post(
            f"/api/listings/{coat.id}/offers",
            json={"price_cents": 6000, "minutes": 60},
            headers={"X-CSRF-Token": seller.csrf},
        )
        assert resp.status_code == 201, resp.text
    page.goto(f"{server.url}/offers")
    assert "$60.00" in page.inner_text("main")
    page.get_by_role("button", name="Accept offer").click()
    if importlib.util.find_spec("liveshow.orders") is not None:
        page.get_by_text("Accepted: see your order").wait_for(timeout=10000)
    else:  # until the order service is installed, the refusal is shown, not swallowed
        page.locator(".social-toast", has_text="Orders are not installed").wait_for(timeout=10000)
