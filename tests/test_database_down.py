"""HTTP while the database is down (issue #20): a private PostgreSQL is crashed under a running app;
the seller API and signed-in pages answer 503 with Retry-After (JSON for /api/*, a page otherwise),
never a 500, and everything works again once it is back. Other database errors stay 500s."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import exc as sa
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bench.services import PrivatePostgres
from liveshow.accounts.service import create_user, issue_token
from liveshow.app import create_app
from liveshow.outage import is_database_down
from liveshow.web.unavailable import RETRY_AFTER_S
from tests.conftest import make_settings, signup
from tests.helpers import form_csrf


@pytest.fixture
def pg_app(tmp_path: Path, private_pg: PrivatePostgres) -> Iterator[tuple[PrivatePostgres, Starlette]]:
    yield private_pg, create_app(make_settings(tmp_path, private_pg.new_database()))


def assert_unavailable_json(resp: object) -> None:
    status = getattr(resp, "status_code", None)
    assert status == 503, getattr(resp, "text", "")
    headers = getattr(resp, "headers", {})
    assert headers["retry-after"] == str(RETRY_AFTER_S)
    body = resp.json()  # type: ignore[attr-defined]
    assert body["error"] == "unavailable" and body["retry_after"] == RETRY_AFTER_S and body["reason"]
    assert body["retry_after_ms"] == RETRY_AFTER_S * 1000  # the unit room frames and other refusals give


def test_seller_api_and_signed_in_pages_answer_503_while_the_database_is_down(
    pg_app: tuple[PrivatePostgres, Starlette],
) -> None:
    pg, app = pg_app
    context = app.state.ctx
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        with context.db.session() as session:
            seller = create_user(session, "apiseller", "correct horse battery")
            token = issue_token(session, seller)
        bearer = {"Authorization": f"Bearer {token}"}
        signup(client, "pageseller")  # the browser: a session cookie
        csrf = form_csrf(client, "/")
        made = client.post("/api/shows", json={"title": "Before"}, headers=bearer)
        assert made.status_code == 201, made.text
        show_id = made.json()["id"]

        pg.crash()
        try:
            # The seller API by token and by session cookie (current_user asks the database first).
            assert_unavailable_json(client.post("/api/shows", json={"title": "During"}, headers=bearer))
            assert_unavailable_json(client.get(f"/api/shows/{show_id}", headers=bearer))
            assert_unavailable_json(
                client.post("/api/shows", json={"title": "During"}, headers={"X-CSRF-Token": csrf})
            )
            assert_unavailable_json(client.post(f"/api/shows/{show_id}/end", headers=bearer))
            # Signed-in pages: a page that says so, not a stack trace.
            for path in ("/", "/orders", f"/shows/{show_id}"):
                page = client.get(path)
                assert page.status_code == 503, (path, page.status_code, page.text[:300])
                assert page.headers["retry-after"] == str(RETRY_AFTER_S)
                assert "text/html" in page.headers["content-type"]
                assert "try again in a few seconds" in page.text
            ready = client.get("/readyz")
            assert ready.status_code == 503
        finally:
            pg.start()

        # Back: the pool's dead connections are replaced, nothing stays broken.
        deadline = time.monotonic() + 20
        while (
            again := client.post("/api/shows", json={"title": "After"}, headers=bearer)
        ).status_code == 503:
            assert time.monotonic() < deadline, again.text
            time.sleep(0.2)
        assert again.status_code == 201, again.text
        assert client.get("/").status_code == 200


def test_only_connection_errors_count_as_the_database_down() -> None:
    assert is_database_down(sa.OperationalError("SELECT 1", None, Exception("connection refused")))
    assert is_database_down(sa.InterfaceError("SELECT 1", None, Exception("connection closed")))
    invalidated = sa.DBAPIError("SELECT 1", None, Exception("server closed"), connection_invalidated=True)
    assert is_database_down(invalidated)
    assert is_database_down(sa.TimeoutError("QueuePool limit reached"))
    assert is_database_down(psycopg.OperationalError("connection refused"))
    assert is_database_down(psycopg.InterfaceError("the connection is closed"))
    # Bugs stay 500s: constraints, bad SQL.
    assert not is_database_down(sa.IntegrityError("INSERT", None, Exception("duplicate key")))
    assert not is_database_down(sa.ProgrammingError("SELEC", None, Exception("syntax error")))
    assert not is_database_down(psycopg.errors.UniqueViolation("duplicate key"))
    assert not is_database_down(ValueError("nothing to do with the database"))


def test_a_database_bug_is_still_a_500() -> None:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from liveshow.web.unavailable import HANDLED, database_down_handler

    def broken(request: Request) -> Response:
        raise sa.IntegrityError("INSERT", None, Exception("duplicate key"))

    def down(request: Request) -> Response:
        raise sa.OperationalError("SELECT 1", None, Exception("connection refused"))

    app = Starlette(
        routes=[Route("/api/broken", broken), Route("/api/down", down)],
        exception_handlers=dict.fromkeys(HANDLED, database_down_handler),
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/api/broken").status_code == 500
        assert_unavailable_json(client.get("/api/down"))
