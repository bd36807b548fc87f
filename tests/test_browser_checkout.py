"""Headless Chromium walks the test provider's checkout: a viewer wins an auction on the show page,
follows the card's link to pay, pays with "Test payment (no money moves)", the seller ships it with a
carrier and tracking number, and the buyer sees it shipped and marks it delivered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from liveshow.accounts.service import get_user_by_name, issue_token
from liveshow.app import create_app
from liveshow.db import Database
from liveshow.demo import BUYER, SELLER, load_demo
from liveshow.orders.models import Order
from liveshow.shows.models import LineupItem, Show
from tests.conftest import LiveServer, make_settings

pytestmark = pytest.mark.browser
PASSWORD = "demo password 1"
TEST_LABEL = "Test payment (no money moves)"


class Shop:
    def __init__(self, server: LiveServer, db: Database) -> None:
        self.url, self.db = server.url, db
        with db.session() as s:
            show = s.exec(select(Show)).one()
            assert show.id is not None
            show.state = "live"  # the sale, not the video, is under test here
            s.add(show)
            s.commit()
            self.show_id = show.id
            first = s.exec(
                select(LineupItem).where(LineupItem.show_id == show.id).order_by(col(LineupItem.position))
            ).first()
            assert first is not None
            self.listing_id = first.listing_id
            seller = get_user_by_name(s, SELLER)
            assert seller is not None
            self.seller_token = issue_token(s, seller)

    def orders(self) -> list[Order]:
        with self.db.session() as s:
            return list(s.exec(select(Order).order_by(col(Order.id))).all())


@pytest.fixture
def shop(tmp_path: Path, sqlite_url: str) -> Iterator[Shop]:
    settings = make_settings(tmp_path, sqlite_url, payment_provider="test", allow_test_payments=True)
    db = Database(settings.resolved_database_url)
    load_demo(db, settings, PASSWORD)
    server = LiveServer(create_app(settings)).start()
    yield Shop(server, db)
    server.stop()
    db.close()


def signed_in(browser: Any, shop: Shop, name: str) -> Any:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{shop.url}/signin")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/signin" not in url)
    return page


def test_won_auction_to_shipped_order(browser: Any, shop: Shop) -> None:
    sam = signed_in(browser, shop, BUYER)
    seller = signed_in(browser, shop, SELLER)
    sam.goto(f"{shop.url}/shows/{shop.show_id}")
    sam.wait_for_function("document.getElementById('room-status').dataset.state === 'open'")
    r = httpx.post(
        f"{shop.url}/api/shows/{shop.show_id}/auction",
        json={
            "type": "lot.open",
            "listing_id": shop.listing_id,
            "mode": "auction",
            "start_cents": 2000,
            "duration_s": 8,  # time for the bid on a busy machine; sudden death: no extension
            "sudden_death": True,
        },
        headers={"Authorization": f"Bearer {shop.seller_token}"},
        timeout=15,
    )
    assert r.status_code == 200, r.text
    sam.get_by_role("button", name="Bid").wait_for(state="visible", timeout=15_000)
    sam.get_by_role("button", name="Bid").click()
    notice = sam.locator("#item-card .item-notice")
    notice.get_by_text("You won it for $20.00").wait_for(timeout=30_000)
    notice.get_by_role("link", name="Pay in your orders").click()
    sam.wait_for_url(f"{shop.url}/orders")

    assert "no money moves" in sam.locator("#test-payments").inner_text()
    row = sam.locator("tr[data-order-id]")
    assert "awaiting payment" in row.inner_text() and "$20.00" in row.inner_text()
    assert sam.get_by_role("button", name="Pay", exact=True).count() == 0  # never a bare "Pay"
    sam.get_by_role("button", name=TEST_LABEL).click()
    sam.wait_for_url(f"{shop.url}/orders")
    assert "paid" in sam.locator("tr[data-order-id] td.status").inner_text()
    assert sam.get_by_role("button", name=TEST_LABEL).count() == 0  # paid once; nothing left to press
    [order] = shop.orders()
    assert (order.status, order.source, order.price_cents) == ("paid", "auction", 2000)
    assert order.payment_ref.startswith("test_")

    seller.goto(f"{shop.url}/orders")
    sold = seller.locator(f"tr[data-order-id='{order.id}']")
    sold.get_by_label("Carrier").fill("USPS")
    sold.get_by_label("Tracking number").fill("9400 1118 9922")
    sold.get_by_role("button", name="Mark shipped").click()
    seller.wait_for_url(f"{shop.url}/orders")
    assert "shipped" in seller.locator(f"tr[data-order-id='{order.id}'] td.status").inner_text()

    sam.reload()
    status = sam.locator("tr[data-order-id] td.status").inner_text()
    assert "shipped" in status and "USPS 9400 1118 9922" in status
    sam.get_by_role("button", name="Mark delivered").click()
    sam.wait_for_url(f"{shop.url}/orders")
    assert "delivered" in sam.locator("tr[data-order-id] td.status").inner_text()
    [order] = shop.orders()
    assert (order.status, order.carrier, order.tracking_number) == ("delivered", "USPS", "9400 1118 9922")
