from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import select
from starlette.testclient import TestClient

from liveshow.closet.fields import price_text_to_cents
from liveshow.closet.models import Listing, ListingPhoto
from liveshow.errors import ValidationFailed
from liveshow.settings import Settings
from liveshow.web.auth import ctx
from tests.conftest import signup
from tests.foundation_helpers import create_listing, csrf, image_bytes


def _listings(client: TestClient) -> list[Listing]:
    with ctx(client).db.session() as session:  # type: ignore[arg-type]
        return list(session.exec(select(Listing)).all())


def _uploads(settings: Settings) -> list[Path]:
    return sorted(settings.uploads_dir.glob("*")) if settings.uploads_dir.exists() else []


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("12.50", 1250),
        ("12.5", 1250),
        ("$3", 300),
        ("0.01", 1),
        ("1,234.56", 123456),
        ("100000", 10_000_000),
        ("0.29", 29),
        ("19.99", 1999),
    ],
)
def test_price_text_is_parsed_exactly(text: str, cents: int) -> None:
    assert price_text_to_cents(text) == cents


@pytest.mark.parametrize(
    "text", ["0", "0.00", "-5", "12.505", "1e3", "abc", "", "100000.01", "12,34", "nan", "inf"]
)
def test_bad_prices_are_refused(text: str) -> None:
    with pytest.raises(ValidationFailed):
        price_text_to_cents(text)


def test_listing_crud_with_photos(client: TestClient, settings: Settings) -> None:
    signup(client, "alice")
    listing_id = create_listing(
        client, title="Levi's 501 jeans", price="48.00", photos=2, brand="Levi's", size="W28"
    )
    page = client.get(f"/listings/{listing_id}")
    assert page.status_code == 200
    assert "Levi&#39;s 501 jeans" in page.text and "$48.00" in page.text
    with ctx(client).db.session() as session:  # type: ignore[arg-type]
        photos = session.exec(select(ListingPhoto).where(ListingPhoto.listing_id == listing_id)).all()
    assert len(photos) == 2
    for photo in photos:
        full = client.get(f"/uploads/{photo.filename}")
        thumb = client.get(f"/uploads/{photo.thumb_filename}")
        assert full.status_code == 200 and full.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(thumb.content)).size[0] <= 400
    assert len(_uploads(settings)) == 4

    # Edit: change fields, drop one photo, add a PNG.
    token = csrf(client)
    resp = client.post(
        f"/listings/{listing_id}/edit",
        data={
            "csrf_token": token,
            "title": "Levi's 501 jeans, light wash",
            "price": "45",
            "quantity": "2",
            "category": "bottoms",
            "condition": "like new",
            "remove_photo": str(photos[0].id),
        },
        files=[("photos", ("new.png", image_bytes("PNG"), "image/png"))],
        follow_redirects=False,
    )
    assert resp.status_code == 303, resp.text
    listing = _listings(client)[0]
    assert (listing.title, listing.price_cents, listing.quantity, listing.category) == (
        "Levi's 501 jeans, light wash",
        4500,
        2,
        "bottoms",
    )
    assert not (settings.uploads_dir / photos[0].filename).exists()
    assert len(_uploads(settings)) == 4

    # Mark sold and back.
    client.post(f"/listings/{listing_id}/sold", data={"csrf_token": token, "sold": "1"})
    assert _listings(client)[0].status == "sold"
    client.post(f"/listings/{listing_id}/sold", data={"csrf_token": token, "sold": "0"})
    assert _listings(client)[0].status == "available"
    assert "light wash" in client.get("/closet/alice").text

    resp = client.post(f"/listings/{listing_id}/delete", data={"csrf_token": token}, follow_redirects=False)
    assert resp.status_code == 303
    assert _listings(client) == []
    assert _uploads(settings) == []
    assert client.get(f"/listings/{listing_id}").status_code == 404


def test_uploads_are_reencoded_without_metadata(client: TestClient, settings: Settings) -> None:
    signup(client, "bea")
    image = Image.new("RGB", (300, 300), (10, 200, 30))
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    raw = io.BytesIO()
    image.save(raw, "JPEG", exif=exif.tobytes())
    token = csrf(client)
    resp = client.post(
        "/listings/new",
        data={"csrf_token": token, "title": "Green tee", "price": "9.99"},
        files=[("photos", ("x.jpg", raw.getvalue() + b"<script>alert(1)</script>", "image/jpeg"))],
        follow_redirects=False,
    )
    assert resp.status_code == 303
    stored = next(p for p in _uploads(settings) if not p.stem.endswith("_t"))
    assert b"SpyCam" not in stored.read_bytes() and b"<script>" not in stored.read_bytes()
    assert len(stored.stem) > 30  # random name, not the uploaded one


@pytest.mark.parametrize(
    ("files", "status", "reason"),
    [
        ([("photos", ("a.txt", b"hello, not an image", "image/jpeg"))], 415, "not a readable"),
        ([("photos", ("a.gif", b"GIF89a" + b"\x00" * 40, "image/gif"))], 415, "x"),
        ([("photos", ("tiny.png", image_bytes("PNG", (8, 8)), "image/png"))], 400, "too small"),
        ([("photos", (f"p{i}.jpg", image_bytes(), "image/jpeg")) for i in range(9)], 400, "At most 8"),
    ],
)
def test_bad_photo_leaves_nothing_behind(
    client: TestClient,
    settings: Settings,
    files: list[tuple[str, tuple[str, bytes, str]]],
    status: int,
    reason: str,
) -> None:
    signup(client, "carl")
    token = csrf(client)
    resp = client.post(
        "/listings/new",
        data={"csrf_token": token, "title": "Nice coat", "price": "30"},
        files=[("photos", ("ok.jpg", image_bytes(), "image/jpeg")), *files],
    )
    assert resp.status_code == status
    if reason != "x":
        assert reason in resp.text
    assert 'value="Nice coat"' in resp.text  # the form comes back with what was typed
    assert _listings(client) == []
    assert _uploads(settings) == []


def test_photo_too_large_is_413(tmp_path: Path, sqlite_url: str) -> None:
    from liveshow.app import create_app
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, sqlite_url, max_photo_bytes=20_000)
    big = Image.effect_noise((600, 600), 80).convert("RGB")
    raw = io.BytesIO()
    big.save(raw, "PNG")
    assert len(raw.getvalue()) > 20_000
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        signup(client, "dina")
        resp = client.post(
            "/listings/new",
            data={"csrf_token": csrf(client), "title": "Noise", "price": "1"},
            files=[("photos", ("big.png", raw.getvalue(), "image/png"))],
        )
        assert resp.status_code == 413
        assert _listings(client) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"title": ""}, "Title"),
        ({"title": "x" * 121}, "Title"),
        ({"price": "0"}, "Price"),
        ({"price": "-3"}, "Price"),
        ({"price": "100000.01"}, "Price"),
        ({"price": "12.345"}, "Price"),
        ({"quantity": "0"}, "Quantity"),
        ({"quantity": "1000"}, "Quantity"),
        ({"quantity": "two"}, "Quantity"),
        ({"condition": "mint"}, "Condition"),
        ({"category": "cars"}, "Category"),
        ({"brand": "b" * 61}, "Brand"),
        ({"size": "s" * 21}, "Size"),
        ({"description": "d" * 4001}, "Description"),
    ],
)
def test_listing_form_validation(client: TestClient, fields: dict[str, str], message: str) -> None:
    signup(client, "eli")
    data = {"csrf_token": csrf(client), "title": "Fine title", "price": "10", "quantity": "1", **fields}
    resp = client.post("/listings/new", data=data)
    assert resp.status_code == 400
    assert message in resp.text
    assert _listings(client) == []


def test_other_sellers_listing_cannot_be_changed(client: TestClient, app: object) -> None:
    signup(client, "owner")
    listing_id = create_listing(client)
    other = TestClient(client.app, base_url="http://127.0.0.1")
    signup(other, "intruder")
    token = csrf(other)
    edit = other.post(
        f"/listings/{listing_id}/edit", data={"csrf_token": token, "title": "Mine now", "price": "1"}
    )
    assert edit.status_code == 403
    assert other.get(f"/listings/{listing_id}/edit").status_code == 403
    assert other.post(f"/listings/{listing_id}/delete", data={"csrf_token": token}).status_code == 403
    assert other.post(f"/listings/{listing_id}/sold", data={"csrf_token": token}).status_code == 403
    assert "Edit" not in other.get(f"/listings/{listing_id}").text.split("Sold by")[1]
    listing = _listings(client)[0]
    assert (listing.title, listing.status) == ("Red silk blouse", "available")

    # The same through the API with the intruder's session.
    headers = {"X-CSRF-Token": token}
    assert other.patch(f"/api/listings/{listing_id}", json={"title": "x"}, headers=headers).status_code == 403
    assert other.delete(f"/api/listings/{listing_id}", headers=headers).status_code == 403
    assert len(_listings(client)) == 1


def test_anonymous_users_are_sent_to_sign_in(client: TestClient) -> None:
    assert client.get("/listings/new", follow_redirects=False).headers["location"].startswith("/signin")
    client.get("/")
    resp = client.post("/listings/new", data={"csrf_token": csrf(client), "title": "x", "price": "1"})
    assert resp.status_code == 401


def test_listings_api(client: TestClient) -> None:
    signup(client, "api-seller")
    headers = {"X-CSRF-Token": csrf(client)}
    resp = client.post(
        "/api/listings",
        json={"title": "Coach bag", "price_cents": 18500, "category": "bags", "condition": "like new"},
        headers=headers,
    )
    assert resp.status_code == 201, resp.text
    listing = resp.json()
    assert listing["price_cents"] == 18500 and listing["available"] == 1
    photo = client.post(
        f"/api/listings/{listing['id']}/photos",
        content=image_bytes("WEBP"),
        headers={**headers, "content-type": "image/webp"},
    )
    assert photo.status_code == 201 and photo.json()["photos"][0]["url"].endswith(".webp")
    patched = client.patch(f"/api/listings/{listing['id']}", json={"price": "150.00"}, headers=headers)
    assert patched.status_code == 200 and patched.json()["price_cents"] == 15000
    assert (
        client.get("/api/listings", params={"seller": "api-seller"}).json()["listings"][0]["title"]
        == "Coach bag"
    )
    for body, status in [
        ({"title": "x", "price_cents": 12.5}, 400),
        ({"title": "x", "price_cents": "1250"}, 400),
        ({"title": "x", "price_cents": True}, 400),
        ({"title": "x", "price_cents": 0}, 400),
        ({"title": "x", "price_cents": 10_000_001}, 400),
        ({"title": ["x"], "price_cents": 100}, 400),
        ({"title": "x", "price_cents": 100, "quantity": 1000}, 400),
    ]:
        assert client.post("/api/listings", json=body, headers=headers).status_code == status, body
    assert (
        client.post(
            "/api/listings", content=b"[1,2]", headers={**headers, "content-type": "application/json"}
        ).status_code
        == 400
    )
    assert (
        client.post(
            "/api/listings", content=b"{bad", headers={**headers, "content-type": "application/json"}
        ).status_code
        == 400
    )
    assert (
        client.post(
            "/api/listings", content=b"title=x", headers={**headers, "content-type": "text/plain"}
        ).status_code
        == 415
    )
    assert (
        client.post("/api/listings", json={"title": "x", "price_cents": 100}).status_code == 403
    )  # no CSRF header
    assert (
        client.post(
            "/api/listings", json={"title": "x" * 70_000, "price_cents": 1}, headers=headers
        ).status_code
        == 413
    )
    bad_photo = client.post(f"/api/listings/{listing['id']}/photos", content=b"nope", headers=headers)
    assert bad_photo.status_code == 415
    assert client.delete(f"/api/listings/{listing['id']}", headers=headers).status_code == 204
    assert client.get(f"/api/listings/{listing['id']}").status_code == 404
