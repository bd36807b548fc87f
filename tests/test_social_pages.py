"""The social partials are on the pages people use: like and follow on a listing, follow on a closet."""

from __future__ import annotations

from sqlmodel import select
from starlette.testclient import TestClient

from liveshow.closet.models import Listing
from liveshow.db import Database
from liveshow.demo import SELLER, load_demo
from liveshow.settings import Settings
from tests.conftest import signup
from tests.helpers import form_csrf


def test_listing_and_closet_pages_carry_like_and_follow(client: TestClient, settings: Settings) -> None:
    db = Database(settings.resolved_database_url)
    load_demo(db, settings, password="demo password 1")
    with db.session() as session:
        listing = session.exec(select(Listing)).first()
    assert listing is not None
    signup(client, "shopper")
    page = client.get(f"/listings/{listing.id}")
    assert page.status_code == 200
    assert f'data-like-listing="{listing.id}"' in page.text
    assert f'data-follow-seller="{SELLER}"' in page.text
    closet = client.get(f"/closet/{SELLER}")
    assert closet.status_code == 200 and f'data-follow-seller="{SELLER}"' in closet.text
    # The like counts on the listing page once given.
    headers = {"x-csrf-token": form_csrf(client)}
    liked = client.post(f"/api/listings/{listing.id}/like", json={"liked": True}, headers=headers)
    assert liked.status_code == 200
    assert "data-like-count>1<" in client.get(f"/listings/{listing.id}").text
    db.close()
