from __future__ import annotations

from starlette.testclient import TestClient


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


def test_request_id_is_echoed(client: TestClient) -> None:
    resp = client.get("/healthz", headers={"x-request-id": "abc123"})
    assert resp.headers["x-request-id"] == "abc123"
