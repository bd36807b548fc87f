from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, Histogram
from starlette.testclient import TestClient

from liveshow.looplag import measure_lag_forever


def test_healthz(client: TestClient) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.text == "ok"
    assert len(resp.headers["x-request-id"]) == 16


def test_readyz_checks_database_and_bus(client: TestClient) -> None:
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json() == {"ready": True, "database": True, "bus": True}


def test_metrics_prometheus_text(client: TestClient) -> None:
    client.get("/healthz")
    resp = client.get("/metrics")
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


def test_served_app_reports_its_loop_lag(client: TestClient) -> None:
    time.sleep(0.1)  # the probe runs on the app's loop while the test client waits
    text = client.get("/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("liveshow_loop_lag_seconds_count"))
    assert float(line.split()[-1]) >= 1


def test_pages_name_their_icon_and_it_is_served(client: TestClient) -> None:
    """Every page links the site icon, so a browser asks for it rather than for a missing /favicon.ico."""
    assert '<link rel="icon" href="/static/favicon.svg"' in client.get("/").text
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.startswith("<svg")
