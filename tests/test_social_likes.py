"""Likes and follows over their JSON endpoints: state, counts, privacy of likers, bad input."""

from __future__ import annotations

from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.test_social_support import act_as, make_listing, make_user


def test_like_toggle_count_and_likers_seller_only(app: Starlette, client: TestClient) -> None:
    seller, ann, bob = make_user(app, "seller1"), make_user(app, "ann"), make_user(app, "bob")
    coat = make_listing(app, seller, "Blue wool coat")
    url = f"/api/listings/{coat.id}/like"

    h = act_as(client, ann)
    assert client.post(url, json={"liked": True}, headers=h).json() == {"liked": True, "count": 1}
    # Liking twice is idempotent, not a second like.
    assert client.post(url, json={"liked": True}, headers=h).json() == {"liked": True, "count": 1}
    h = act_as(client, bob)
    assert client.post(url, headers=h).json() == {"liked": True, "count": 2}  # no body: toggle
    assert client.get(f"/api/listings/{coat.id}/likes").json() == {"count": 2, "liked": True}

    # Who liked it: the seller sees, a liker doesn't.
    assert client.get(f"/api/listings/{coat.id}/likers").status_code == 403
    act_as(client, seller)
    names = {p["username"] for p in client.get(f"/api/listings/{coat.id}/likers").json()["likers"]}
    assert names == {"ann", "bob"}

    h = act_as(client, bob)
    assert client.post(url, json={"liked": False}, headers=h).json() == {"liked": False, "count": 1}
    act_as(client, None)
    assert client.get(f"/api/listings/{coat.id}/likes").json() == {"count": 1, "liked": False}


def test_like_bad_input(app: Starlette, client: TestClient) -> None:
    seller, ann = make_user(app, "seller1"), make_user(app, "ann")
    coat = make_listing(app, seller, "Blue wool coat")
    url = f"/api/listings/{coat.id}/like"

    act_as(client, None)
    assert client.post(url, json={"liked": True}).status_code in (401, 403)
    h = act_as(client, ann)
    assert client.post(url, json={"liked": True}).status_code == 403  # no CSRF token
    assert client.post(url, json={"liked": True}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    resp = client.post(url, json={"liked": "yes"}, headers=h)
    assert resp.status_code == 400 and "liked" in resp.json()["reason"]
    assert (
        client.post(url, content=b"[1]", headers={**h, "Content-Type": "application/json"}).status_code == 400
    )
    assert (
        client.post(url, content=b"{nope", headers={**h, "Content-Type": "application/json"}).status_code
        == 400
    )
    big = b'{"liked": true, "pad": "' + b"x" * 20000 + b'"}'
    assert client.post(url, content=big, headers={**h, "Content-Type": "application/json"}).status_code == 413
    assert client.post("/api/listings/999999/like", json={}, headers=h).status_code == 404
    assert client.post("/api/listings/abc/like", json={}, headers=h).status_code == 400
    assert client.post("/api/listings/99999999999999/like", json={}, headers=h).status_code == 400
    # A seller can't like their own listing.
    h = act_as(client, seller)
    assert client.post(url, json={"liked": True}, headers=h).status_code == 400
    assert client.get(f"/api/listings/{coat.id}/likes").json()["count"] == 0


def test_follow_unfollow_and_counts(app: Starlette, client: TestClient) -> None:
    seller, ann = make_user(app, "seller1"), make_user(app, "ann")
    h = act_as(client, ann)
    resp = client.post("/api/sellers/seller1/follow", json={"following": True}, headers=h)
    assert resp.json() == {"following": True, "followers": 1}
    assert client.get("/api/sellers/seller1/followers").json() == {"followers": 1, "following": True}
    assert client.post("/api/sellers/SELLER1/follow", json={}, headers=h).json() == {
        "following": False,
        "followers": 0,
    }
    # Bad input: yourself, nobody, a non-bool, no CSRF.
    assert client.post("/api/sellers/ann/follow", json={}, headers=h).status_code == 400
    assert client.post("/api/sellers/nobody-here/follow", json={}, headers=h).status_code == 404
    assert client.post("/api/sellers/" + "x" * 200 + "/follow", json={}, headers=h).status_code == 404
    assert client.post("/api/sellers/seller1/follow", json={"following": 1}, headers=h).status_code == 400
    assert client.post("/api/sellers/seller1/follow", json={"following": True}).status_code == 403
    act_as(client, seller)
    assert client.get("/api/sellers/seller1/followers").json() == {"followers": 0, "following": False}


def test_a_liked_listing_can_still_be_deleted(app: Starlette, client: TestClient) -> None:
    """Likes, offers and embeddings go with their listing: the closet's delete is not blocked by them."""
    from liveshow.closet.models import Listing
    from liveshow.closet.photos import PhotoStore
    from liveshow.closet.service import delete_listing
    from liveshow.social.models import Like
    from tests.test_social_support import app_ctx

    seller, ann = make_user(app, "seller1"), make_user(app, "ann")
    coat = make_listing(app, seller, "Blue wool coat")
    client.post(f"/api/listings/{coat.id}/like", json={"liked": True}, headers=act_as(client, ann))
    h = act_as(client, seller)
    offer = client.post(
        f"/api/listings/{coat.id}/offers", json={"price_cents": 2000, "minutes": 60}, headers=h
    )
    assert offer.status_code == 201
    context = app_ctx(app)
    assert context.social is not None
    with context.db.session() as session:
        context.social.listing_saved(session, coat)
        delete_listing(session, PhotoStore(context.settings.uploads_dir), seller.user, coat.id or 0)
    with context.db.session() as session:
        assert session.get(Listing, coat.id) is None
        assert session.exec(select(Like)).all() == []
