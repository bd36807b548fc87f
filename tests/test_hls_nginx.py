"""Through Debian's nginx as a caching reverse proxy (config/nginx.conf) in front of two liveshow
processes on real Redis and PostgreSQL: the studio goes live over WHIP, a buyer forced to HLS (``?hls``)
plays the show through the cache with the room working (a claim and a bid), and the cache carries
the HLS objects (a second fetch of a part is a cache HIT; immutable parts, short playlists)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from bench.stack import Stack, nginx_binary
from liveshow.accounts.service import create_user
from liveshow.db import Database
from liveshow.demo import BUYER, SELLER, load_demo
from liveshow.orders.models import Order
from liveshow.settings import Settings
from liveshow.shows.models import LineupItem, Show
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.browser
PASSWORD = "demo password 1"


class Site:
    def __init__(self, stack: Stack, db: Database) -> None:
        self.stack = stack
        self.url = stack.url
        self.db = db
        with db.session() as s:
            show = s.exec(select(Show)).one()
            assert show.id is not None
            self.show_id = show.id
            self.lineup = [
                i.listing_id
                for i in s.exec(
                    select(LineupItem).where(LineupItem.show_id == show.id).order_by(col(LineupItem.position))
                ).all()
            ]
            create_user(s, "lena", PASSWORD)

    def orders(self) -> list[Order]:
        with self.db.session() as s:
            return list(s.exec(select(Order).order_by(col(Order.id))).all())


@pytest.fixture
def site(tmp_path: Path, postgres_url: str, redis_prefix: str) -> Iterator[Site]:
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (make test runs scripts/ensure-nginx.sh)")
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url)
    db = Database(postgres_url)
    load_demo(db, settings, PASSWORD)
    stack = Stack(tmp_path / "stack", postgres_url, REDIS_URL, redis_prefix, processes=2)
    stack.start()
    try:
        yield Site(stack, db)
    finally:
        stack.stop()
        db.close()


def signed_in(browser: Any, site: Site, name: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["camera", "microphone"])
    page = context.new_page()
    page.goto(f"{site.url}/signin")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/signin" not in url)
    return page


def wait_for(fn: Any, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def notice(page: Any) -> str:
    return str(page.locator("#item-card .item-notice").inner_text())


def position(page: Any) -> float:
    return float(page.evaluate("document.getElementById('player-video').currentTime"))


def test_hls_plays_through_nginx_and_the_room_works(browser: Any, site: Site) -> None:
    studio = signed_in(browser, site, SELLER)
    sam = signed_in(browser, site, BUYER)
    lena = signed_in(browser, site, "lena")
    hls_statuses: list[tuple[int, str]] = []
    sam.on("response", lambda r: hls_statuses.append((r.status, r.url)) if "/hls/" in r.url else None)
    whep: list[str] = []
    sam.on("request", lambda r: whep.append(r.url) if "/whep/" in r.url else None)
    sessions: list[str] = []
    studio.on(
        "response",
        lambda r: (
            sessions.append(r.headers.get("location", ""))
            if "/whip/" in r.url and r.request.method == "POST"
            else None
        ),
    )
    try:
        studio.goto(f"{site.url}/studio/{site.show_id}")
        studio.wait_for_function("document.getElementById('room-status').dataset.state === 'open'")
        studio.wait_for_function("document.getElementById('studio-preview').videoWidth > 0")
        studio.get_by_role("button", name="Go live").click()
        studio.wait_for_function("document.getElementById('studio-connection').textContent === 'connected'")

        # the session URL names the process that holds the publisher (nginx rewrote it), so PATCH
        # and DELETE reach it whatever process the round robin would pick
        assert len(sessions) == 1, sessions
        assert httpx.URL(sessions[0]).path.split("/whip/")[0] in ("/p1", "/p2"), sessions
        sam.goto(f"{site.url}/shows/{site.show_id}?hls")
        lena.goto(f"{site.url}/shows/{site.show_id}?hls")
        for viewer in (sam, lena):
            viewer.wait_for_function("document.getElementById('room-status').dataset.state === 'open'")
        wait_for(
            lambda: position(sam) > 2.0, timeout=40, what=f"HLS playback through nginx: {hls_statuses[-8:]}"
        )
        assert sam.evaluate("window.liveshowPlayer.mode") == "hls" and whep == []
        wait_for(lambda: "s delay" in sam.locator("#player-mode").inner_text(), what="latency mode")
        assert all(status in (200, 307) for status, _ in hls_statuses), hls_statuses

        # ---- the room works the same: a claim, then a bid
        tees, jeans = site.lineup[1], site.lineup[0]
        studio.select_option("#lot-listing", str(tees))
        studio.get_by_label("Buy now").check()
        studio.get_by_role("button", name="Put up").click()
        sam.locator("#item-card .item-status", has_text="left").wait_for()
        sam.get_by_role("button", name="Claim").click()
        wait_for(lambda: "Claimed for $" in notice(sam), what="sam claimed")
        lena.locator("#item-card .item-status", has_text="1 left").wait_for()
        lena.get_by_label("Chat message").fill("claim")  # the chat keyword claims the last one
        lena.get_by_role("button", name="Send").click()
        sam.locator("#item-card .item-status", has_text="Sold out").wait_for()

        studio.select_option("#lot-listing", str(jeans))
        studio.get_by_label("Auction").check()
        studio.fill("#lot-start", "20")
        studio.fill("#lot-duration", "30")
        studio.get_by_role("button", name="Put up").click()
        lena.locator("#item-card .item-status", has_text="Starting bid $20.00").wait_for()
        lena.get_by_role("button", name="Bid").click()
        wait_for(lambda: "You lead at $20.00" in notice(lena), what="lena leads")
        sam.wait_for_function(
            "document.querySelector('#item-card .item-status').textContent.includes('Current bid $20.00')"
        )
        claims = [(o.listing_id, o.source) for o in site.orders()]
        assert claims == [(tees, "claim"), (tees, "claim")]
        played = position(sam)
        wait_for(lambda: position(sam) > played + 2.0, what="playback goes on")  # still playing

        # ---- the cache carries it: the same part again is a HIT; what it may not keep it does not
        playlist = httpx.get(f"{site.url}/hls/{site.show_id}/live.m3u8", follow_redirects=True)
        assert playlist.status_code == 200 and playlist.headers["cache-control"] == "public, max-age=1"
        part = next(
            line.split('URI="')[1].rstrip('"').split('"')[0]
            for line in playlist.text.splitlines()
            if line.startswith("#EXT-X-PART:")
        )
        part_url = str(playlist.url).rsplit("/", 1)[0] + "/" + part
        first = httpx.get(part_url, follow_redirects=True)  # a 307 first where it hit the other process
        again = httpx.get(first.url)
        assert first.status_code == again.status_code == 200 and first.content == again.content
        assert again.headers["x-cache"] == "HIT"
        assert "immutable" in again.headers["cache-control"]
        # a refusal is never cached, and neither is the redirect to the holder that the round robin
        # may answer first (first.url names a process only where the part itself was redirected)
        missing = httpx.get(str(first.url).rsplit("/", 1)[0] + "/999999.0.m4s", follow_redirects=True)
        assert missing.status_code == 404 and missing.headers["cache-control"] == "no-store"
        hops = [(hop.status_code, hop.headers["cache-control"]) for hop in missing.history]
        assert all(hop == (307, "no-store") for hop in hops), hops
    finally:
        for page in (studio, sam, lena):
            page.context.close()
