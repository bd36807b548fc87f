"""Shared fixtures: settings on a temp data dir, SQLite and real PostgreSQL databases, a real Redis,
an app served by uvicorn on a free port, and headless Debian Chromium through Playwright."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bench.chromium import CHROMIUM, COMMON_ARGS
from bench.services import PrivatePostgres, PrivateRedis
from bench.services import Unavailable as ServiceUnavailable
from liveshow.app import create_app
from liveshow.db import migrate
from liveshow.ratelimit.service import UNLIMITED
from liveshow.settings import Settings, coerce_values

PG_ADMIN_URL = os.environ.get("LIVESHOW_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("LIVESHOW_TEST_REDIS", "redis://127.0.0.1:6379/0")
CHROMIUM_ARGS = ["--use-fake-device-for-media-stream", *COMMON_ARGS]  # the fake camera at its own 20 fps


# ---------------------------------------------------------------- databases


class PostgresTemplate:
    """One migrated template database per test session; each test copies it (fast, isolated)."""

    def __init__(self) -> None:
        self.admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        self.template = f"liveshow_tmpl_{secrets.token_hex(4)}"
        self.created: list[str] = []
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.template}"'))
        migrate(self._url(self.template))

    def _url(self, name: str) -> str:
        return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"

    def new_database(self) -> str:
        name = f"liveshow_t_{secrets.token_hex(5)}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        self.created.append(name)
        return self._url(name)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in [*self.created, self.template]:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[PostgresTemplate]:
    tmpl = PostgresTemplate()
    yield tmpl
    tmpl.drop_all()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """Run the test once against SQLite and once against a fresh, migrated PostgreSQL database."""
    if request.param == "sqlite":
        target = tmp_path / "liveshow.db"
        target.write_bytes(sqlite_template.read_bytes())
        return f"sqlite:///{target}"
    tmpl: PostgresTemplate = request.getfixturevalue("pg_template")
    return tmpl.new_database()


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    target = tmp_path / "liveshow.db"
    target.write_bytes(sqlite_template.read_bytes())
    return f"sqlite:///{target}"


@pytest.fixture
def postgres_url(pg_template: PostgresTemplate) -> str:
    return pg_template.new_database()


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of the test's own, which it may stop, crash and start (bench/services.py);
    removed afterwards. Skips the test where Debian's PostgreSQL server binaries are not installed."""
    try:
        pg = PrivatePostgres.create()
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield pg
    finally:
        pg.close()


# ---------------------------------------------------------------- redis


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key namespace of its own, removed afterwards, so tests never see each other's keys."""
    prefix = f"lstest:{secrets.token_hex(6)}"
    yield prefix
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


# ---------------------------------------------------------------- apps


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    base = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        bus_url="memory://",
        secret_key="test-secret-" + secrets.token_hex(8),
        log_level="WARNING",
        gc_tuning=False,  # tests/test_gctune.py checks it; here it would freeze every earlier test's objects
        ice_interfaces=("127.0.0.1",),  # the server's media stays on loopback, as `make bench` does
    )
    # Tests make many users, sockets and viewers from one address; tests of the limits set small ones.
    # Chat and reactions keep their defaults (the room's tests of them predate the other limits).
    unlimited = coerce_values({k: v for k, v in UNLIMITED.items() if k != "limit_reaction_sender"})
    return base.with_overrides(**{**unlimited, **overrides})


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def app(settings: Settings) -> Starlette:
    return create_app(settings)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """A real uvicorn serving an app on loopback, in a thread with its own event loop."""

    def __init__(self, app: Starlette, port: int | None = None, deflate: bool = False) -> None:
        import uvicorn

        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.deflate = deflate
        # By default the same WebSocket implementation `liveshow serve` runs.
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ws="websockets-sansio",
            ws_per_message_deflate=deflate,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture
def live_server(app: Starlette) -> Iterator[LiveServer]:
    server = LiveServer(app).start()
    yield server
    server.stop()


# ---------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in this thread while
    # it is open, which would stop every asyncio test that runs after it.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["camera", "microphone"])
    pg = context.new_page()
    yield pg
    context.close()


# ---------------------------------------------------------------- helpers


def signup(client: TestClient, username: str, password: str = "correct horse battery") -> None:
    """Sign up (and so sign in) through the real form, CSRF token included."""
    from tests.helpers import form_csrf

    token = form_csrf(client, "/signup")
    resp = client.post(
        "/signup",
        data={"username": username, "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    assert resp.status_code in (302, 303), resp.text


# ---------------------------------------------------------------- private dependencies (fault tests)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own that it may kill and restart empty (never the shared one)."""
    try:
        redis = PrivateRedis(tmp_path / "private-redis")
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    redis.start()
    try:
        yield redis
    finally:
        redis.close()
