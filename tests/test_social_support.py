"""Helpers for the social tests: users signed in by a real signed session cookie, demo data."""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass

from itsdangerous import TimestampSigner
from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.accounts.models import User
from liveshow.accounts.service import create_user
from liveshow.closet.models import Listing
from liveshow.context import AppContext
from liveshow.shows.models import Show

PASSWORD = "correct horse battery"


@dataclass
class Actor:
    user: User
    cookie: str
    csrf: str

    @property
    def id(self) -> int:
        assert self.user.id is not None
        return self.user.id


def app_ctx(app: Starlette) -> AppContext:
    context: AppContext = app.state.ctx
    return context


def session_cookie(secret: str, data: dict[str, object]) -> str:
    # Exactly what Starlette's SessionMiddleware writes: signed base64 JSON.
    raw = base64.b64encode(json.dumps(data).encode())
    return TimestampSigner(secret).sign(raw).decode()


def wait_until_watched(app: Starlette, show_id: int | None, timeout: float = 10.0) -> None:
    """Until the app's show watcher receives the show's events (it subscribes on its next scan)."""
    social = app_ctx(app).social
    assert social is not None and show_id is not None
    deadline = time.monotonic() + timeout
    while not social.watcher.is_watching(show_id):
        assert time.monotonic() < deadline, f"the watcher never subscribed to show {show_id}"
        time.sleep(0.05)


def make_user(app: Starlette, name: str) -> Actor:
    context = app_ctx(app)
    with context.db.session() as session:
        user = create_user(session, name, PASSWORD)
    csrf = secrets.token_urlsafe(16)
    cookie = session_cookie(context.settings.secret_key, {"uid": user.id, "csrf": csrf})
    return Actor(user, cookie, csrf)


def act_as(client: TestClient, actor: Actor | None) -> dict[str, str]:
    """Make ``client`` send ``actor``'s session cookie; returns headers carrying the CSRF token."""
    client.cookies.clear()
    if actor is None:
        return {}
    client.cookies.set("liveshow_session", actor.cookie)
    return {"X-CSRF-Token": actor.csrf}


def make_listing(
    app: Starlette, seller: Actor, title: str, price_cents: int = 2500, **fields: object
) -> Listing:
    with app_ctx(app).db.session() as session:
        listing = Listing(seller_id=seller.id, title=title, price_cents=price_cents, **fields)
        session.add(listing)
        session.commit()
        session.refresh(listing)
        return listing


def make_show(app: Starlette, seller: Actor, title: str = "Spring closet", state: str = "scheduled") -> Show:
    with app_ctx(app).db.session() as session:
        show = Show(seller_id=seller.id, title=title, state=state, stream_key=secrets.token_hex(8))
        session.add(show)
        session.commit()
        session.refresh(show)
        return show
