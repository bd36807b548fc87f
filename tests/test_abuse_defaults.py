"""The findings of issue #16, with the default settings (these fail on the code before the limits):
unlimited sign-in guesses, unlimited WHEP posts and room sockets from one account or address, and a
push endpoint whose name resolves inside our network."""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from liveshow.accounts.service import create_user
from liveshow.app import create_app
from liveshow.settings import Settings
from liveshow.shows.models import Show
from liveshow.social.webpush import b64url
from tests.helpers import form_csrf
from tests.test_notices_webpush import browser_keys
from tests.test_social_support import act_as, app_ctx, make_user


@pytest.fixture
def default_client(tmp_path: Path, sqlite_url: str) -> Iterator[TestClient]:
    # Settings as shipped (tests/conftest.make_settings switches most limits off).
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=sqlite_url,
        secret_key=secrets.token_hex(8),
        log_level="WARNING",
        gc_tuning=False,
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client


def test_sign_in_guessing_is_throttled_by_default(default_client: TestClient) -> None:
    token = form_csrf(default_client, "/signin")
    statuses = []
    for n in range(25):
        data = {"username": f"victim{n % 3}", "password": f"guess {n}", "csrf_token": token}
        statuses.append(default_client.post("/signin", data=data).status_code)
    assert statuses[:10] == [401] * 10
    assert statuses[-1] == 429


def test_whep_posts_from_one_address_are_limited_by_default(default_client: TestClient) -> None:
    headers = {"content-type": "application/sdp"}
    statuses = {
        default_client.post("/whep/999", content=b"v=0\r\n", headers=headers).status_code for _ in range(40)
    }
    assert 429 in statuses


def test_one_account_cannot_open_many_room_sockets_by_default(default_client: TestClient) -> None:
    app: Any = default_client.app
    with app_ctx(app).db.session() as session:
        seller = create_user(session, "seller", "correct horse battery")
        show = Show(seller_id=seller.id or 0, title="Sale", stream_key="k", state="live")
        session.add(show)
        session.commit()
        show_id = show.id
    act_as(default_client, make_user(app, "ann"))
    url = f"/ws/shows/{show_id}?last_seq="
    opened: list[Any] = []
    try:
        first_frames = []
        for _ in range(8):
            ws = default_client.websocket_connect(url).__enter__()
            opened.append(ws)
            first_frames.append(json.loads(ws.receive_text())["type"])
        assert first_frames[:5] == ["snapshot"] * 5
        assert first_frames[5:] == ["error"] * 3
    finally:
        for ws in opened:
            try:
                ws.__exit__(None, None, None)
            except Exception:
                pass


def test_a_push_endpoint_resolving_inside_is_refused(
    default_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = socket.getaddrinfo

    def fake_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "push.inside.example":  # a public-looking name that points at our own network
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    app: Any = default_client.app
    h = act_as(default_client, make_user(app, "ann"))
    _key, p256dh, auth = browser_keys()
    body = {"endpoint": "https://push.inside.example/x", "keys": {"p256dh": p256dh, "auth": b64url(auth)}}
    resp = default_client.post("/api/push/subscriptions", json=body, headers=h)
    assert resp.status_code == 400 and "public push service" in resp.json()["reason"]
