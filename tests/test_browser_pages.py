"""Every page a user clicks through from the home page, with the demo data, in headless Chromium at desktop
and phone width: 200, no script errors, nothing wider than the screen. Screenshots go to
/tmp/int-page-<name>-<width>.png for a human to look at."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from liveshow.app import create_app
from liveshow.closet.models import Listing
from liveshow.db import Database
from liveshow.demo import BUYER, SELLER, load_demo
from liveshow.settings import Settings
from liveshow.shows.models import Show
from tests.conftest import LiveServer, make_settings
from tests.test_replay import record_show

pytestmark = pytest.mark.browser
PASSWORD = "demo password 1"
SIZES = ({"width": 1280, "height": 900}, {"width": 390, "height": 844})


class Site:
    def __init__(self, settings: Settings, url: str) -> None:
        self.url = url
        with Database(settings.resolved_database_url).session() as s:
            demo = s.exec(select(Show).where(Show.title.startswith("Thursday"))).one()  # type: ignore[attr-defined]
            self.show_id = demo.id
            self.listing_id = s.exec(select(Listing).where(Listing.title.startswith("Levi"))).one().id


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[Site, int]]:
    settings = make_settings(tmp_path, sqlite_url)
    load_demo(Database(settings.resolved_database_url), settings, PASSWORD)
    # A show with a recording, made by the real recorder, for the replay page.
    first = create_app(settings)
    with TestClient(first, base_url="http://127.0.0.1") as client:
        recorded = record_show(client, first, seconds=2.0)
    server = LiveServer(create_app(settings)).start()
    yield Site(settings, server.url), recorded.show_id
    server.stop()


def visit(browser: Any, base: str, who: str | None, paths: dict[str, str]) -> None:
    for size in SIZES:
        context = browser.new_context(viewport=size, is_mobile=size["width"] < 500)
        context.grant_permissions(["camera", "microphone"])
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        if who is not None:
            page.goto(f"{base}/signin")
            page.fill("#username", who)
            page.fill("#password", PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda url: "/signin" not in url)
        for name, path in paths.items():
            resp = page.goto(base + path)
            assert resp is not None and resp.status == 200, f"{path}: {resp.status if resp else None}"
            if name in ("show", "show-buyer", "studio"):  # a live socket: never network-idle
                page.wait_for_function("document.getElementById('room-status').dataset.state === 'open'")
            else:
                page.wait_for_load_state("networkidle")
            page.screenshot(path=f"/tmp/int-page-{name}-{size['width']}.png", full_page=True)
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= size["width"], f"{path} is {wide}px wide at {size['width']}px"
        assert errors == [], errors
        context.close()


def test_every_page_from_home(browser: Any, site: tuple[Site, int]) -> None:
    s, replay_show = site
    public = {
        "home": "/",
        "closet": f"/closet/{SELLER}",
        "listing": f"/listings/{s.listing_id}",
        "show": f"/shows/{s.show_id}",
        "replay": f"/shows/{replay_show}/replay",
    }
    visit(browser, s.url, None, public)
    visit(browser, s.url, BUYER, {"orders": "/orders", "show-buyer": f"/shows/{s.show_id}"})
    visit(browser, s.url, SELLER, {"studio": f"/studio/{s.show_id}", "manage": f"/shows/{s.show_id}/manage"})
