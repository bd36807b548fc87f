"""Web Push end to end: a real push service on loopback receives the encrypted, VAPID-signed notice,
and decrypting it with the browser's keys (an independent RFC 8188 implementation) gives the notice."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import http_ece
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlmodel import select
from starlette.testclient import TestClient

from liveshow.app import create_app
from liveshow.settings import Settings
from liveshow.social.models import PushSubscription
from liveshow.social.webpush import WebPush, b64url
from tests.test_social_support import act_as, app_ctx, make_user


class PushService:
    """A minimal push service: records each POST; paths starting /gone answer 410 like a dropped one."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                service.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(410 if self.path.startswith("/gone") else 201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def push_service() -> Iterator[PushService]:
    service = PushService()
    yield service
    service.close()


@pytest.fixture
def push_client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.with_overrides(push_allow_http=True))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


def browser_keys() -> tuple[ec.EllipticCurvePrivateKey, str, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    auth = b"0123456789abcdef"
    return key, b64url(public), auth


def test_push_delivered_encrypted_and_signed(push_client: TestClient, push_service: PushService) -> None:
    app: Any = push_client.app
    ann = make_user(app, "ann")
    key, p256dh, auth = browser_keys()
    h = act_as(push_client, ann)
    server_key = push_client.get("/api/push/key").json()["public_key"]
    sub = {"endpoint": push_service.url + "/push/abc", "keys": {"p256dh": p256dh, "auth": b64url(auth)}}
    assert push_client.post("/api/push/subscriptions", json=sub, headers=h).status_code == 201
    gone_sub = {"endpoint": push_service.url + "/gone/xyz", "keys": sub["keys"]}
    assert push_client.post("/api/push/subscriptions", json=gone_sub, headers=h).status_code == 201

    notifier = app_ctx(app).social.notifier  # type: ignore[union-attr]
    push_client.portal.call(notifier.notify, [ann.id], "show_live", "seller1 is live now: Denim", "/shows/7")
    push_client.portal.call(notifier.drain)
    got = push_service.wait(2)
    msg = next(m for m in got if m["path"] == "/push/abc")
    headers = {k.lower(): v for k, v in msg["headers"].items()}
    assert headers["content-encoding"] == "aes128gcm"
    assert f"k={server_key}" in headers["authorization"] and headers["authorization"].startswith("vapid t=")
    plain = http_ece.decrypt(msg["body"], private_key=key, auth_secret=auth, version="aes128gcm")
    assert json.loads(plain) == {"kind": "show_live", "text": "seller1 is live now: Denim", "url": "/shows/7"}
    assert b"Denim" not in msg["body"]  # encrypted on the wire

    # The push service said 410 Gone for the other one: it is dropped.
    with app_ctx(app).db.session() as session:
        endpoints = [s.endpoint for s in session.exec(select(PushSubscription))]
    assert endpoints == [sub["endpoint"]]


def test_vapid_key_made_once_and_kept(tmp_path: Path, sqlite_url: str) -> None:
    from liveshow.db import Database

    db = Database(sqlite_url)
    first = WebPush(tmp_path, db, "mailto:a@b.c").public_key
    again = WebPush(tmp_path, db, "mailto:a@b.c").public_key
    assert first == again and len(base64.urlsafe_b64decode(first + "=")) == 65
    assert (tmp_path / "vapid_private.pem").stat().st_mode & 0o777 == 0o600
    db.close()


def test_subscription_bad_input(client: TestClient) -> None:
    app: Any = client.app
    ann = make_user(app, "ann")
    _key, p256dh, auth = browser_keys()
    keys = {"p256dh": p256dh, "auth": b64url(auth)}
    h = act_as(client, ann)
    # No DNS here: names resolve as they would on the internet.
    names = {"push.example.com": ["93.184.215.14"], "localhost": ["127.0.0.1", "::1"]}
    app_ctx(app).social.push.resolve = lambda host, port: names[host]  # type: ignore[union-attr]
    bad = [
        {"endpoint": "http://push.example.com/x", "keys": keys},  # not https
        {"endpoint": "https://127.0.0.1/x", "keys": keys},  # our own network
        {"endpoint": "https://10.0.0.1/x", "keys": keys},
        {"endpoint": "https://localhost/x", "keys": keys},
        {"endpoint": "https://push.example.com/" + "x" * 2000, "keys": keys},
        {"endpoint": "https://push.example.com/x", "keys": {"p256dh": "AAAA", "auth": keys["auth"]}},
        {"endpoint": "https://push.example.com/x", "keys": {"p256dh": p256dh, "auth": "!!!"}},
        {"endpoint": "https://push.example.com/x"},
        {"endpoint": 12, "keys": keys},
    ]
    for body in bad:
        resp = client.post("/api/push/subscriptions", json=body, headers=h)
        assert resp.status_code == 400, body
    good = {"endpoint": "https://push.example.com/x", "keys": keys}
    assert client.post("/api/push/subscriptions", json=good).status_code == 403  # no CSRF
    assert client.post("/api/push/subscriptions", json=good, headers=h).status_code == 201
    assert client.request("DELETE", "/api/push/subscriptions", json=good, headers=h).json() == {
        "removed": True
    }
    resp = client.get("/sw.js")
    assert resp.status_code == 200 and "showNotification" in resp.text
    assert resp.headers["content-type"].startswith("application/javascript")
