from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from liveshow.closet.models import Listing
from liveshow.shows.models import LineupItem, Show
from liveshow.web.auth import ctx
from tests.conftest import signup
from tests.foundation_helpers import api_create_show, create_listing, csrf, image_bytes

SOON = (datetime.now(UTC) + timedelta(days=3)).replace(hour=18, minute=0, second=0, microsecond=0)


def _lineup_titles(client: TestClient, show_id: int) -> list[str]:
    data = client.get(f"/api/shows/{show_id}").json()
    return [item["title"] for item in data["lineup"]]


def _set_state(client: TestClient, show_id: int, state: str) -> None:
    with ctx(client).db.session() as session:  # type: ignore[arg-type]
        show = session.get(Show, show_id)
        assert show is not None
        show.state = state
        session.add(show)
        session.commit()


def _shows(client: TestClient) -> list[Show]:
    with ctx(client).db.session() as session:  # type: ignore[arg-type]
        return list(session.exec(select(Show)).all())


def test_create_show_api_contract(client: TestClient) -> None:
    signup(client, "sella")
    a = create_listing(client, title="Item A")
    b = create_listing(client, title="Item B")
    data = api_create_show(
        client, description="Denim night", starts_at=SOON.strftime("%Y-%m-%dT%H:%M:%SZ"), listing_ids=[b, a]
    )
    show_id = data["id"]
    assert isinstance(show_id, int)
    assert data["whip_url"] == f"http://127.0.0.1/whip/{show_id}"
    assert data["whep_url"] == f"http://127.0.0.1/whep/{show_id}"
    assert data["page_url"] == f"http://127.0.0.1/shows/{show_id}"
    assert data["studio_url"] == f"http://127.0.0.1/studio/{show_id}"
    assert isinstance(data["stream_key"], str) and len(data["stream_key"]) >= 32
    assert data["state"] == "scheduled"
    assert [i["title"] for i in data["lineup"]] == ["Item B", "Item A"]  # type: ignore[union-attr]

    public = TestClient(client.app, base_url="http://127.0.0.1").get(f"/api/shows/{show_id}").json()
    assert "stream_key" not in public and "whip_url" not in public
    assert public["seller"]["username"] == "sella"
    assert client.get(f"/api/shows/{show_id}").json()["stream_key"] == data["stream_key"]


def test_public_url_is_the_origin(tmp_path: Path, sqlite_url: str) -> None:
    from liveshow.app import create_app
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, sqlite_url, public_url="https://live.example.com/")
    with TestClient(create_app(settings), base_url="https://live.example.com") as client:
        signup(client, "selpub")
        data = api_create_show(client)
    assert data["whip_url"] == f"https://live.example.com/whip/{data['id']}"


@pytest.mark.parametrize(("setting", "told"), [(None, "layered"), ("h264", "h264"), ("layered", "layered")])
def test_the_studio_is_told_what_video_to_publish(
    tmp_path: Path, sqlite_url: str, setting: str | None, told: str
) -> None:
    """studio_video: layered VP8 by default (per-viewer adaptation), H.264 where the operator wants the
    LL-HLS rendition; studio.js reads data-video."""
    from liveshow.app import create_app
    from tests.conftest import make_settings

    extra = {} if setting is None else {"studio_video": setting}
    with TestClient(create_app(make_settings(tmp_path, sqlite_url, **extra))) as client:
        signup(client, "selvid")
        show_id = api_create_show(client)["id"]
        studio = client.get(f"/studio/{show_id}")
    assert studio.status_code == 200 and f'data-video="{told}"' in studio.text


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"title": ""}, 400),
        ({"title": "x" * 121}, 400),
        ({"title": 5}, 400),
        ({"title": "ok", "description": "d" * 2001}, 400),
        ({"title": "ok", "starts_at": "tomorrow"}, 400),
        ({"title": "ok", "starts_at": "2001-01-01T00:00:00Z"}, 400),
        ({"title": "ok", "visibility": "secret"}, 400),
        ({"title": "ok", "listing_ids": "1,2"}, 400),
        ({"title": "ok", "listing_ids": [1, 1]}, 400),
        ({"title": "ok", "listing_ids": [999]}, 400),
        ({"title": "ok", "listing_ids": [True]}, 400),
    ],
)
def test_create_show_rejects_bad_input(client: TestClient, body: dict[str, object], status: int) -> None:
    signup(client, "selb")
    resp = client.post("/api/shows", json=body, headers={"X-CSRF-Token": csrf(client)})
    assert resp.status_code == status, resp.text
    assert resp.json()["reason"]
    assert _shows(client) == []


def test_create_show_auth(client: TestClient) -> None:
    assert client.post("/api/shows", json={"title": "x"}).status_code == 401
    signup(client, "selc")
    assert client.post("/api/shows", json={"title": "x"}).status_code == 403  # session without CSRF header
    assert (
        client.post("/api/shows", json={"title": "x"}, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    assert _shows(client) == []


def test_lineup_only_from_own_closet(client: TestClient) -> None:
    signup(client, "seld")
    theirs = create_listing(client, title="Not yours")
    other = TestClient(client.app, base_url="http://127.0.0.1")
    signup(other, "sele")
    resp = other.post(
        "/api/shows", json={"title": "x", "listing_ids": [theirs]}, headers={"X-CSRF-Token": csrf(other)}
    )
    assert resp.status_code == 403
    assert _shows(client) == []


def test_lineup_reorder_add_remove_through_the_manage_page(client: TestClient) -> None:
    signup(client, "self")
    ids = [create_listing(client, title=f"Item {n}") for n in "ABC"]
    token = csrf(client)
    resp = client.post(
        "/shows/new",
        data={
            "csrf_token": token,
            "title": "Sunday show",
            "starts_at": SOON.strftime("%Y-%m-%dT%H:%M"),
            "tz": "-120",
            "listing_ids": [str(ids[0]), str(ids[1])],
        },
        files=[("cover", ("cover.png", image_bytes("PNG", (640, 360)), "image/png"))],
        follow_redirects=False,
    )
    assert resp.status_code == 303, resp.text
    show_id = int(resp.headers["location"].split("/")[2])
    show = _shows(client)[0]
    assert show.starts_at == SOON - timedelta(hours=2)  # 18:00 typed at UTC+2
    assert show.cover_filename and client.get(f"/uploads/{show.cover_filename}").status_code == 200
    assert _lineup_titles(client, show_id) == ["Item A", "Item B"]

    def act(action: str, *listing: int) -> int:
        data = {"csrf_token": token, "listing_id": [str(i) for i in listing]}
        return client.post(f"/shows/{show_id}/lineup/{action}", data=data, follow_redirects=False).status_code

    assert act("add", ids[2]) == 303
    assert _lineup_titles(client, show_id) == ["Item A", "Item B", "Item C"]
    assert act("up", ids[2]) == 303
    assert _lineup_titles(client, show_id) == ["Item A", "Item C", "Item B"]
    assert act("down", ids[0]) == 303
    assert _lineup_titles(client, show_id) == ["Item C", "Item A", "Item B"]
    assert act("up", ids[2]) == 303  # already first: stays
    assert act("remove", ids[0]) == 303
    assert _lineup_titles(client, show_id) == ["Item C", "Item B"]
    assert act("remove", ids[0]) == 404
    with ctx(client).db.session() as session:  # type: ignore[arg-type]
        positions = [i.position for i in session.exec(select(LineupItem).order_by(LineupItem.position)).all()]
    assert positions == [0, 1]

    # Replace the whole order through the API.
    resp = client.put(
        f"/api/shows/{show_id}/lineup",
        json={"listing_ids": [ids[1], ids[2], ids[0]]},
        headers={"X-CSRF-Token": token},
    )
    assert resp.status_code == 200
    assert _lineup_titles(client, show_id) == ["Item B", "Item C", "Item A"]

    page = client.get(f"/shows/{show_id}/manage")
    assert page.status_code == 200 and "Move up: Item B" in page.text

    edit = client.post(
        f"/shows/{show_id}/edit",
        data={"csrf_token": token, "title": "Renamed", "visibility": "private"},
        follow_redirects=False,
    )
    assert edit.status_code == 303
    assert _shows(client)[0].title == "Renamed"
    assert _shows(client)[0].starts_at == show.starts_at  # empty start time keeps the old one


def test_other_sellers_show_is_forbidden(client: TestClient) -> None:
    signup(client, "selg")
    listing = create_listing(client)
    show_id = api_create_show(client, listing_ids=[listing])["id"]
    other = TestClient(client.app, base_url="http://127.0.0.1")
    signup(other, "selh")
    token = csrf(other)
    assert other.get(f"/studio/{show_id}").status_code == 403
    assert other.get(f"/shows/{show_id}/manage").status_code == 403
    assert (
        other.post(f"/shows/{show_id}/edit", data={"csrf_token": token, "title": "Hijack"}).status_code == 403
    )
    assert other.post(f"/shows/{show_id}/delete", data={"csrf_token": token}).status_code == 403
    assert (
        other.post(
            f"/shows/{show_id}/lineup/remove", data={"csrf_token": token, "listing_id": str(listing)}
        ).status_code
        == 403
    )
    assert (
        other.put(
            f"/api/shows/{show_id}/lineup", json={"listing_ids": []}, headers={"X-CSRF-Token": token}
        ).status_code
        == 403
    )
    assert other.get(f"/shows/{show_id}").status_code == 200  # watching is fine
    show = _shows(client)[0]
    assert show.title == "Friday drop"
    assert _lineup_titles(client, show_id) == ["Red silk blouse"]


def test_viewer_and_studio_pages(client: TestClient) -> None:
    signup(client, "seli")
    listing = create_listing(client, title="Blue jacket")
    data = api_create_show(client, listing_ids=[listing])
    show_id = data["id"]
    studio = client.get(f"/studio/{show_id}")
    assert studio.status_code == 200
    assert 'data-role="host"' in studio.text and str(data["stream_key"]) in studio.text
    assert f"/whip/{show_id}" in studio.text and "Blue jacket" in studio.text
    viewer = TestClient(client.app, base_url="http://127.0.0.1")
    page = viewer.get(f"/shows/{show_id}")
    assert page.status_code == 200 and 'data-role="viewer"' in page.text
    assert str(data["stream_key"]) not in page.text and "Blue jacket" in page.text
    assert viewer.get(f"/studio/{show_id}", follow_redirects=False).status_code == 303
    assert viewer.get("/shows/999999").status_code == 404
    home = viewer.get("/")
    assert "Friday drop" in home.text and "seli" in home.text


def test_private_show_is_only_for_its_seller(client: TestClient) -> None:
    signup(client, "selj")
    show_id = api_create_show(client, visibility="private")["id"]
    assert client.get(f"/shows/{show_id}").status_code == 200
    stranger = TestClient(client.app, base_url="http://127.0.0.1")
    assert stranger.get(f"/shows/{show_id}").status_code == 404
    assert stranger.get(f"/api/shows/{show_id}").status_code == 404
    assert "Friday drop" not in stranger.get("/").text


def test_delete_show_only_before_it_starts(client: TestClient) -> None:
    signup(client, "selk")
    listing = create_listing(client)
    show_id = api_create_show(client, listing_ids=[listing])["id"]
    token = csrf(client)
    _set_state(client, show_id, "live")
    assert client.post(f"/shows/{show_id}/delete", data={"csrf_token": token}).status_code == 409
    assert client.post(f"/listings/{listing}/delete", data={"csrf_token": token}).status_code == 409
    _set_state(client, show_id, "scheduled")
    assert (
        client.post(
            f"/shows/{show_id}/delete", data={"csrf_token": token}, follow_redirects=False
        ).status_code
        == 303
    )
    assert _shows(client) == []


def test_cli_create_user_and_token_then_create_show(tmp_path: Path, sqlite_url: str) -> None:
    from liveshow.app import create_app
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, sqlite_url)
    env = {
        "LIVESHOW_DATA_DIR": str(settings.data_dir),
        "LIVESHOW_DATABASE_URL": sqlite_url,
        "PATH": "/usr/bin:/bin",
    }
    run = [sys.executable, "-m", "liveshow.cli"]
    cwd = Path(__file__).resolve().parent.parent
    made = subprocess.run(
        [*run, "create-user", "obs-seller", "--password", "correct horse battery"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    dup = subprocess.run(
        [*run, "create-user", "obs-seller", "--password", "correct horse battery"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dup.returncode == 2 and "taken" in dup.stderr
    token = subprocess.run(
        [*run, "token", "obs-seller"], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert token.returncode == 0, token.stderr
    api_token = token.stdout.strip()
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        resp = client.post(
            "/api/shows", json={"title": "From a script"}, headers={"Authorization": f"Bearer {api_token}"}
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["seller"]["username"] == "obs-seller"
        assert resp.json()["stream_key"]


def test_an_ended_shows_page_leads_to_its_replay(client: TestClient) -> None:
    """A link to an ended show (shared, bookmarked, or open as it ends) leads on to the replay instead of
    asking anyone to go live; before it ends the host is sent to the studio."""
    signup(client, "sell")
    show_id = api_create_show(client)["id"]
    before = client.get(f"/shows/{show_id}").text
    assert "Open the studio" in before
    assert " hidden>Watch the replay" in before and "This show has ended" not in before
    _set_state(client, show_id, "ended")
    for page in (client.get(f"/shows/{show_id}"), TestClient(client.app).get(f"/shows/{show_id}")):
        assert page.status_code == 200
        assert page.text.count(f'href="/shows/{show_id}/replay"') == 2  # on the player and under it
        assert "Open the studio" not in page.text and " hidden>Watch the replay" not in page.text


def test_the_studio_picker_starts_at_the_first_item_still_for_sale(client: TestClient) -> None:
    """Opening (or reopening) the studio mid-show: sold items stay listed but cannot be put up again."""
    signup(client, "selm")
    first, second = create_listing(client, title="Sold tee"), create_listing(client, title="Open tee")
    show_id = api_create_show(client, listing_ids=[first, second])["id"]
    with ctx(client).db.session() as session:  # type: ignore[arg-type]
        listing = session.get(Listing, first)
        assert listing is not None
        listing.status = "sold"
        session.add(listing)
        session.commit()
    page = client.get(f"/studio/{show_id}").text
    assert f'<option value="{first}" disabled>1. Sold tee' in page and "(sold)</option>" in page
    assert f'<option value="{second}" selected>2. Open tee' in page
