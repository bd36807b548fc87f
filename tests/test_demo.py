from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from PIL import Image
from sqlmodel import select
from starlette.testclient import TestClient

from liveshow.accounts.service import authenticate
from liveshow.closet.models import Listing, ListingPhoto
from liveshow.db import Database
from liveshow.demo import BUYER, SELLER, load_demo
from liveshow.settings import Settings
from liveshow.shows.models import LineupItem, Show
from tests.conftest import signup


def test_demo_loads_once_with_real_photos(settings: Settings) -> None:
    db = Database(settings.resolved_database_url)
    assert load_demo(db, settings, password="demo password 1") == "demo password 1"
    assert load_demo(db, settings, password="other password") is None
    with db.session() as session:
        assert authenticate(session, SELLER, "demo password 1") is not None
        assert authenticate(session, BUYER, "demo password 1") is not None
        listings = session.exec(select(Listing)).all()
        assert 10 <= len(listings) <= 16
        assert len({x.category for x in listings}) >= 6
        assert len({x.brand for x in listings}) >= 10
        assert all(0 < x.price_cents <= 10_000_000 for x in listings)
        photos = session.exec(select(ListingPhoto)).all()
        assert {p.listing_id for p in photos} == {x.id for x in listings}
        shows = session.exec(select(Show)).all()
        assert len(shows) == 1 and shows[0].state == "scheduled" and shows[0].cover_filename
        lineup = session.exec(select(LineupItem).order_by(LineupItem.position)).all()
        assert [i.position for i in lineup] == list(range(6))
    image = Image.open(settings.uploads_dir / photos[0].filename)
    assert image.format == "JPEG" and image.size == (800, 800)
    # Not a flat colour: a shaded product shot has many distinct colours.
    assert len(image.convert("RGB").getcolors(1_000_000) or []) > 1000
    thumb = Image.open(settings.uploads_dir / photos[0].thumb_filename)
    assert thumb.size == (400, 400)
    db.close()


def test_demo_pages_render(client: TestClient, settings: Settings) -> None:
    db = Database(settings.resolved_database_url)
    load_demo(db, settings, password="demo password 2")
    db.close()
    home = client.get("/")
    assert "Thursday Denim" in home.text and "Maya&#39;s Closet" in home.text
    closet = client.get(f"/closet/{SELLER}")
    assert closet.status_code == 200 and "Coach Tabby" in closet.text
    show_id = client.get("/api/listings", params={"seller": SELLER}).json()["listings"][0]["id"]
    assert client.get(f"/listings/{show_id}").status_code == 200
    cover = client.get(home.text.split('<div class="cover">', 1)[1].split('src="', 1)[1].split('"', 1)[0])
    assert cover.status_code == 200 and Image.open(io.BytesIO(cover.content)).width >= 400
    signup(client, "newcomer")


def test_demo_command(tmp_path: Path) -> None:
    env = {"LIVESHOW_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    cwd = Path(__file__).resolve().parent.parent
    first = subprocess.run(
        [sys.executable, "-m", "liveshow.cli", "demo"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr
    assert "sign in as demo-seller with password" in first.stdout
    again = subprocess.run(
        [sys.executable, "-m", "liveshow.cli", "demo"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0 and "already loaded" in again.stdout
