from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram
from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.app import create_app
from liveshow.looplag import measure_lag_forever
from tests.conftest import make_settings

LOOPBACK = ("127.0.0.1", 50000)


@pytest.fixture
def local(app: Starlette) -> Iterator[TestClient]:
    """A client on the loopback interface, as a scraper on the server's own host is."""
    with TestClient(app, base_url="http://127.0.0.1", client=LOOPBACK) as test_client:
        yield test_client


def test_healthz(client: TestClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.text == "ok"
    assert len(resp.headers["x-request-id"]) == 16


def test_readyz_checks_database_and_bus(client: TestClient) -> None:
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json() == {"ready": True, "database": True, "bus": True}


def test_metrics_prometheus_text(local: TestClient) -> None:
    local.get("/healthz")
    resp = local.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert 'liveshow_http_requests_total{method="GET",status="200"}' in resp.text
    # the process's own CPU and memory, as benchmarks and dashboards read them
    cpu = next(x for x in resp.text.splitlines() if x.startswith("process_cpu_seconds_total "))
    assert float(cpu.split()[-1]) > 0
    assert 'liveshow_auction_answer_seconds_count{kind="bid"} 0.0' in resp.text


def test_request_id_is_echoed(client: TestClient) -> None:
    resp = client.get("/healthz", headers={"x-request-id": "abc123"})
    assert resp.headers["x-request-id"] == "abc123"


async def test_loop_lag_probe_sees_a_blocked_loop() -> None:
    histogram = Histogram("lag", "test", buckets=(0.005, 0.02, 0.04, 1.0), registry=CollectorRegistry())
    probe = asyncio.create_task(measure_lag_forever(histogram, interval=0.005))
    await asyncio.sleep(0.05)
    time.sleep(0.06)  # noqa: ASYNC251 (the point: one long callback, every timer of the loop fires late)
    await asyncio.sleep(0.03)
    probe.cancel()
    late = [s for s in histogram.collect()[0].samples if s.name == "lag_bucket" and s.labels["le"] == "0.04"]
    total = histogram.collect()[0].samples
    count = next(s.value for s in total if s.name == "lag_count")
    assert count >= 5 and late[0].value < count  # at least one wake-up was over 40 ms late


def test_served_app_reports_its_loop_lag(local: TestClient) -> None:
    time.sleep(0.1)  # the probe runs on the app's loop while the test client waits
    text = local.get("/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("liveshow_loop_lag_seconds_count"))
    assert float(line.split()[-1]) >= 1


def test_pages_name_their_icon_and_it_is_served(client: TestClient) -> None:
    """Every page links the site icon, so a browser asks for it rather than for a missing /favicon.ico."""
    assert '<link rel="icon" href="/static/favicon.svg"' in client.get("/").text
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.startswith("<svg")


def test_metrics_without_a_token_answer_only_unproxied_loopback_clients(app: Starlette) -> None:
    with TestClient(app, client=("203.0.113.9", 4000)) as remote:
        refused = remote.get("/metrics")
        assert refused.status_code == 401 and refused.json()["error"] == "not_authenticated"
        assert "LIVESHOW_METRICS_TOKEN" in refused.json()["reason"]
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "liveshow_http" not in refused.text
    with TestClient(app, client=LOOPBACK) as local:
        assert local.get("/metrics").status_code == 200
        # a reverse proxy on the same host connects from loopback for everyone: it says so, and is refused
        for header in (
            {"X-Forwarded-For": "203.0.113.9"},
            {"Forwarded": "for=203.0.113.9"},
            {"X-Real-IP": "1.2.3.4"},
        ):
            assert local.get("/metrics", headers=header).status_code == 401
    with TestClient(app, client=("::1", 4000)) as local6:
        assert local6.get("/metrics").status_code == 200


def test_metrics_with_a_token_need_it_from_everyone(tmp_path: Path, sqlite_url: str) -> None:
    app = create_app(make_settings(tmp_path, sqlite_url, metrics_token="s3cret-scrape"))
    with TestClient(app, client=LOOPBACK) as local:
        assert local.get("/metrics").status_code == 401  # loopback alone is not enough once a token is set
        assert local.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = local.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
        assert ok.status_code == 200 and "liveshow_http_requests" in ok.text
    with TestClient(app, client=("203.0.113.9", 4000)) as remote:
        ok = remote.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
        assert ok.status_code == 200


def test_metrics_token_comes_from_the_environment() -> None:
    from liveshow.settings import load_settings

    settings = load_settings(
        {"LIVESHOW_METRICS_TOKEN": "abc", "LIVESHOW_SECRET_KEY": "k"}, Path("/nonexistent")
    )
    assert settings.metrics_token == "abc"
