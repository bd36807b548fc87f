"""Shared by the order tests: an app with a chosen payment provider, and signing in as anyone."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from itsdangerous import TimestampSigner
from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.app import create_app
from liveshow.web.auth import SESSION_CSRF, SESSION_USER
from tests.conftest import make_settings

CSRF = "tok-123"


@contextmanager
def orders_app(
    tmp_path: Path, database_url: str, provider: str, **overrides: Any
) -> Iterator[tuple[Starlette, TestClient]]:
    if provider == "test":
        overrides.setdefault("allow_test_payments", True)
    app = create_app(make_settings(tmp_path, database_url, payment_provider=provider, **overrides))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield app, client


def sign_in(client: TestClient, app: Starlette, user_id: int) -> None:
    client.cookies.clear()
    payload = base64.b64encode(json.dumps({SESSION_USER: user_id, SESSION_CSRF: CSRF}).encode())
    signer = TimestampSigner(str(app.state.ctx.settings.secret_key))
    client.cookies.set("liveshow_session", signer.sign(payload).decode())
