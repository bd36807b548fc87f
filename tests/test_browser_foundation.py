"""Headless Chromium walks the seller's first day: sign up, list items with photos, schedule a show with a
lineup, reorder it, and look at the home page (screenshots in /tmp for a human to look at)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from liveshow.closet.artwork import product_image
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    # One database is enough here: the same flows run against PostgreSQL in the HTTP tests.
    return sqlite_url


def _photo(tmp_path: Path, name: str, category: str, colour: tuple[int, int, int]) -> str:
    path = tmp_path / name
    product_image(category, colour, seed=len(name)).save(path, "JPEG", quality=85)
    return str(path)


def test_seller_first_day(page: Any, live_server: LiveServer, tmp_path: Path) -> None:
    base = live_server.url
    page.goto(f"{base}/signup")
    page.fill("#username", "rosa")
    page.fill("#display_name", "Rosa's Rack")
    page.fill("#password", "correct horse battery")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{base}/closet/rosa")
    assert "Your closet is empty" in page.content()

    items = [
        ("Vintage wool blazer", "64.50", "outerwear", (90, 70, 60)),
        ("Striped linen shirt", "22", "tops", (220, 200, 170)),
        ("Leather crossbody bag", "118.00", "bags", (120, 60, 40)),
    ]
    for title, price, category, colour in items:
        page.goto(f"{base}/listings/new")
        page.fill("#title", title)
        page.fill("#brand", "Acme")
        page.fill("#size", "M")
        page.select_option("#category", category)
        page.fill("#price", price)
        page.set_input_files("#photos", _photo(tmp_path, f"{category}.jpg", category, colour))
        page.get_by_role("button", name="List it").click()
        page.wait_for_url(re.compile(r".*/listings/\d+$"))
        assert page.locator(".price.big").inner_text() == f"${float(price):,.2f}"
        assert page.locator("#gallery-main").evaluate("img => img.naturalWidth") > 0

    page.goto(f"{base}/shows/new")
    page.fill("#title", "Autumn layers live")
    page.fill("#description", "Blazers, shirts and a bag.")
    start = (datetime.now() + timedelta(days=1)).replace(hour=19, minute=0)
    page.fill("#starts_at", start.strftime("%Y-%m-%dT%H:%M"))
    cover = tmp_path / "cover.jpg"
    Image.new("RGB", (1280, 720), (200, 80, 120)).save(cover)
    page.set_input_files("#cover", str(cover))
    for box in page.locator("input[name=listing_ids]").all():
        box.check()
    page.get_by_role("button", name="Schedule show").click()
    page.wait_for_url(re.compile(r".*/shows/\d+/manage$"))
    rows = page.locator(".lineup-row .lineup-text a")
    assert rows.count() == 3
    first, second = rows.nth(0).inner_text(), rows.nth(1).inner_text()
    page.get_by_role("button", name=f"Move up: {second}").click()
    page.wait_for_load_state()
    assert page.locator(".lineup-row .lineup-text a").nth(0).inner_text() == second
    assert page.locator(".lineup-row .lineup-text a").nth(1).inner_text() == first
    show_url = page.url.removesuffix("#lineup").removesuffix("/manage")

    page.goto(show_url.replace("/shows/", "/studio/"))
    assert page.locator("#show-root").get_attribute("data-role") == "host"
    page.screenshot(path="/tmp/foundation-studio.png", full_page=True)

    page.goto(f"{base}/")
    card = page.locator(".show-card", has_text="Autumn layers live")
    assert card.count() == 1
    assert "Rosa's Rack" in card.inner_text()
    assert card.locator("img").evaluate("img => img.naturalWidth") > 0
    page.screenshot(path="/tmp/foundation-home.png", full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    # Nothing wider than the phone: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path="/tmp/foundation-home-phone.png", full_page=True)
    page.goto(f"{base}/closet/rosa")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path="/tmp/foundation-closet-phone.png", full_page=True)
    page.goto(show_url)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path="/tmp/foundation-show-phone.png", full_page=True)
