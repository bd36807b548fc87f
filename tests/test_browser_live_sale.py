"""Headless Chromium runs a whole live sale on the real pages: the seller goes live from /studio, puts an
auction up from the host controls, two viewers on /shows/{id} bid (next increment and a custom maximum),
the winner's order shows on /orders; then a buy-now item claimed by a tap and by typing "claim" in chat.

Screenshots of the viewer page and the studio during the auction go to /tmp/int-*.png for a human."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from liveshow.accounts.models import User
from liveshow.accounts.service import create_user, get_user_by_name
from liveshow.app import create_app
from liveshow.closet.models import Listing
from liveshow.db import Database
from liveshow.demo import BUYER, SELLER, load_demo
from liveshow.orders.models import Order
from liveshow.replay.shop import buy_from_replay
from liveshow.shows.models import LineupItem, Show
from tests.conftest import LiveServer, make_settings

pytestmark = pytest.mark.browser
PASSWORD = "demo password 1"


class Sale:
    def __init__(self, server: LiveServer, db: Database) -> None:
        self.url = server.url
        self.db = db
        with db.session() as s:
            show = s.exec(select(Show)).one()
            assert show.id is not None
            self.show_id = show.id
            items = s.exec(
                select(LineupItem).where(LineupItem.show_id == show.id).order_by(col(LineupItem.position))
            ).all()
            self.lineup = [s.get(Listing, i.listing_id) for i in items]
            create_user(s, "lena", PASSWORD)

    def user(self, name: str) -> User:
        with self.db.session() as s:
            user = get_user_by_name(s, name)
            assert user is not None
            return user

    def orders(self) -> list[Order]:
        with self.db.session() as s:
            return list(s.exec(select(Order).order_by(col(Order.id))).all())


@pytest.fixture
def sale(tmp_path: Path, sqlite_url: str) -> Iterator[Sale]:
    settings = make_settings(tmp_path, sqlite_url, publisher_grace_seconds=60.0)
    db = Database(settings.resolved_database_url)
    load_demo(db, settings, PASSWORD)
    server = LiveServer(create_app(settings)).start()
    yield Sale(server, db)
    server.stop()
    db.close()


def signed_in(browser: Any, sale: Sale, name: str, **options: Any) -> Any:
    context = browser.new_context(**options)
    context.grant_permissions(["camera", "microphone"])
    page = context.new_page()
    page.goto(f"{sale.url}/signin")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/signin" not in url)
    return page


def room_open(page: Any) -> None:
    page.wait_for_function("document.getElementById('room-status').dataset.state === 'open'")


def notice(page: Any) -> str:
    return str(page.locator("#item-card .item-notice").inner_text())


def wait_for(fn: Any, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_whole_live_sale(browser: Any, sale: Sale) -> None:
    studio = signed_in(browser, sale, SELLER, viewport={"width": 1280, "height": 900})
    sam = signed_in(browser, sale, BUYER, viewport={"width": 1280, "height": 900})
    lena = signed_in(browser, sale, "lena", viewport={"width": 390, "height": 844}, is_mobile=True)
    pages = [studio, sam, lena]
    try:
        studio.goto(f"{sale.url}/studio/{sale.show_id}")
        room_open(studio)
        studio.wait_for_function("document.getElementById('studio-preview').videoWidth > 0")
        studio.get_by_role("button", name="Go live").click()
        studio.wait_for_function("document.getElementById('studio-connection').textContent === 'connected'")

        for viewer in (sam, lena):
            viewer.goto(f"{sale.url}/shows/{sale.show_id}")
            room_open(viewer)
        # the studio's viewer count comes from the room's presence, not only from video players: an
        # anonymous visitor whose video never starts (WHEP blocked) still counts.
        studio.wait_for_function("document.getElementById('studio-viewers').textContent === '2'")
        anon_context = browser.new_context()
        anon = anon_context.new_page()
        anon.route("**/whep/**", lambda route: route.abort())
        anon.goto(f"{sale.url}/shows/{sale.show_id}")
        room_open(anon)
        studio.wait_for_function("document.getElementById('studio-viewers').textContent === '3'")
        anon_context.close()
        studio.wait_for_function("document.getElementById('studio-viewers').textContent === '2'")
        # pages opened before the media went live follow the show's state
        for page in pages:
            page.locator(".show-head .badge-inline", has_text="LIVE").wait_for()

        # ---- an auction from the host controls
        jeans = sale.lineup[0]
        assert jeans is not None
        studio.select_option("#lot-listing", str(jeans.id))
        studio.get_by_label("Auction").check()
        assert studio.locator("#lot-price").is_hidden() and studio.locator("#lot-start").is_visible()
        studio.fill("#lot-start", "20")
        studio.fill("#lot-duration", "12")
        studio.get_by_role("button", name="Put up").click()
        for viewer in (sam, lena):
            card = viewer.locator("#item-card")
            card.wait_for(state="visible")
            assert jeans.title in card.locator(".item-title").inner_text()
            assert "Starting bid $20.00" in card.locator(".item-status").inner_text()
            viewer.wait_for_function(
                "parseFloat(document.querySelector('#item-card .item-seconds').textContent) > 5"
            )
        assert sam.get_by_role("button", name="Claim").is_hidden()
        assert sam.get_by_role("button", name="Bid").inner_text() == "Bid $20.00"
        seconds = float(sam.locator("#item-card .item-seconds").inner_text())
        assert 5 < seconds <= 12.0

        sam.get_by_role("button", name="Bid").click()
        wait_for(lambda: "You lead at $20.00" in notice(sam), what="sam leads")
        lena.wait_for_function(
            "document.querySelector('#item-card .item-status').textContent.includes('Current bid $20.00')"
        )
        lena.get_by_label("Maximum bid ($)").fill("35")
        lena.get_by_role("button", name="Set max").click()
        wait_for(lambda: "leads at" in notice(lena), what="lena leads")
        # the outbid notice reaches Sam privately; the card shows Lena leading at the next increment
        wait_for(lambda: "You were outbid" in notice(sam), what="sam outbid notice")
        sam.wait_for_function(
            "document.querySelector('#item-card .item-status').textContent.includes('Current bid $21.00')"
        )
        assert "lena" in sam.locator("#item-card .item-status").inner_text()
        assert sam.get_by_role("button", name="Bid").inner_text() == "Bid $22.00"
        assert sam.get_by_label("Maximum bid ($)").get_attribute("placeholder") == "min 22.00"
        assert "outbid" not in notice(lena)

        # the host sees the same card as the viewers, with the leader and the clock, and nothing to buy
        studio.wait_for_function(
            "document.querySelector('#item-card .item-status').textContent.includes('Current bid $21.00')"
        )
        assert "lena" in studio.locator("#item-card .item-status").inner_text()
        assert float(studio.locator("#item-card .item-seconds").inner_text()) > 0
        assert studio.locator("#item-card .item-countdown").is_visible()
        assert studio.locator("#item-card .item-actions").is_hidden()
        # one frame around the chat: the side column's, not a second one inside it
        for page in (sam, studio):
            assert page.evaluate("getComputedStyle(document.getElementById('room')).borderTopWidth") == "0px"

        sam.screenshot(path="/tmp/int-viewer.png", full_page=True)
        lena.screenshot(path="/tmp/int-viewer-phone.png", full_page=True)
        assert lena.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
        studio.screenshot(path="/tmp/int-studio.png", full_page=True)
        feed = studio.locator("#host-controls .host-feed")
        assert "bid" in feed.inner_text()

        # the clock runs out: the writer closes the lot and Lena's order exists
        wait_for(lambda: "You won it for $21.00" in notice(lena), timeout=30, what="lena won")
        sam.wait_for_function(
            "document.querySelector('#item-card .item-status').textContent.startsWith('Sold to lena')"
        )
        # the host's picker moves past what just sold
        tees = sale.lineup[1]
        assert tees is not None
        studio.wait_for_function(f"document.getElementById('lot-listing').value === '{tees.id}'")
        sold = studio.locator(f"#lot-listing option[value='{jeans.id}']")
        assert sold.is_disabled() and sold.inner_text().endswith("(sold)")
        # nothing left to bid on: the card only says who won; the winner is pointed to the payment
        assert sam.get_by_role("button", name="Bid").is_hidden()
        assert sam.get_by_label("Maximum bid ($)").is_hidden()
        lena.locator("#item-card .item-notice").get_by_role("link", name="Pay in your orders").click()
        lena.wait_for_url(f"{sale.url}/orders")
        row = lena.locator("tr[data-order-id]", has_text=jeans.title)
        assert "$21.00" in row.inner_text()
        assert "awaiting payment" in row.inner_text()
        lena.screenshot(path="/tmp/int-orders-phone.png", full_page=True)
        assert lena.evaluate("document.documentElement.scrollWidth") <= 390
        orders = sale.orders()
        assert [(o.buyer_id, o.listing_id, o.price_cents, o.source) for o in orders] == [
            (sale.user("lena").id, jeans.id, 2100, "auction")
        ]
        lena.goto(f"{sale.url}/shows/{sale.show_id}")
        room_open(lena)

        # ---- buy now: two units, one claimed by tapping Claim, one by typing the keyword in chat
        assert tees.quantity == 2
        studio.select_option("#lot-listing", str(tees.id))
        studio.get_by_label("Buy now").check()
        studio.get_by_role("button", name="Put up").click()
        for viewer in (sam, lena):
            viewer.locator("#item-card .item-title", has_text=tees.title).wait_for()
            viewer.locator("#item-card .item-status", has_text="2 left").wait_for()
            assert viewer.get_by_role("button", name="Bid").is_hidden()
        sam.get_by_role("button", name="Claim").click()
        wait_for(lambda: "Claimed for $" in notice(sam), what="sam claimed")
        lena.locator("#item-card .item-status", has_text="1 left").wait_for()
        lena.get_by_label("Chat message").fill("claim")
        lena.get_by_role("button", name="Send").click()
        for viewer in (sam, lena):
            viewer.locator("#item-card .item-status", has_text="Sold out").wait_for()
        assert sam.get_by_role("button", name="Claim").is_disabled()
        claims = [(o.buyer_id, o.price_cents, o.source) for o in sale.orders() if o.listing_id == tees.id]
        assert sorted(claims) == sorted(
            [
                (sale.user(BUYER).id, tees.price_cents, "claim"),
                (sale.user("lena").id, tees.price_cents, "claim"),
            ]
        )
        sam.goto(f"{sale.url}/orders")
        assert tees.title in sam.locator("tr[data-order-id]").first.inner_text()
        # the seller sees both sales
        studio_orders = studio.context.new_page()
        studio_orders.goto(f"{sale.url}/orders")
        assert studio_orders.locator("text=" + tees.title).count() >= 1
    finally:
        for page in pages:
            page.context.close()


def test_auction_sold_elsewhere_card(browser: Any, sale: Sale) -> None:
    """While an auction runs, its last unit is bought from a replay: at the deadline every card says
    "Sold elsewhere", the leader is told no order was made, and the host puts up the next item."""
    with sale.db.session() as s:
        show = s.get(Show, sale.show_id)
        assert show is not None
        show.state = "live"  # as after "Go live"; this test needs no media
        s.add(show)
        s.commit()
    jeans, tees = sale.lineup[0], sale.lineup[1]
    assert jeans is not None and tees is not None
    studio = signed_in(browser, sale, SELLER, viewport={"width": 1280, "height": 900})
    sam = signed_in(browser, sale, BUYER, viewport={"width": 1280, "height": 900})
    try:
        studio.goto(f"{sale.url}/studio/{sale.show_id}")
        sam.goto(f"{sale.url}/shows/{sale.show_id}")
        room_open(studio)
        room_open(sam)
        studio.select_option("#lot-listing", str(jeans.id))
        studio.get_by_label("Auction").check()
        studio.fill("#lot-start", "20")
        studio.fill("#lot-duration", "6")
        studio.get_by_role("button", name="Put up").click()
        sam.locator("#item-card .item-title", has_text=jeans.title).wait_for()
        sam.get_by_role("button", name="Bid").click()
        wait_for(lambda: "You lead at $20.00" in notice(sam), what="sam leads")
        with sale.db.session() as s:
            show = s.get(Show, sale.show_id)
            assert show is not None
            lena = sale.user("lena")
            for _unit in range(jeans.quantity):
                buy_from_replay(s, show, lena, jeans.id or 0, 15)
        sam.locator("#item-card .item-status", has_text="Sold elsewhere").wait_for(timeout=20_000)
        wait_for(lambda: "no order was made" in notice(sam), what="sam told no order was made")
        assert sam.get_by_role("button", name="Bid").is_hidden()
        studio.locator("#item-card .item-status", has_text="Sold elsewhere").wait_for()
        assert studio.locator(f"#lot-listing option[value='{jeans.id}']").is_disabled()
        assert [o.source for o in sale.orders() if o.listing_id == jeans.id] == ["replay"] * jeans.quantity
        # the show moves on
        studio.select_option("#lot-listing", str(tees.id))
        studio.get_by_label("Buy now").check()
        studio.get_by_role("button", name="Put up").click()
        sam.locator("#item-card .item-title", has_text=tees.title).wait_for()
    finally:
        for page in (studio, sam):
            page.context.close()
