"""Prometheus metrics, one registry per app so several apps can live in one test process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "liveshow_http_requests", "HTTP requests", ["method", "status"], registry=self.registry
        )
        self.http_latency = Histogram(
            "liveshow_http_request_seconds", "HTTP request latency", ["method"], registry=self.registry
        )
        self.websockets = Gauge("liveshow_websockets", "Open WebSocket connections", registry=self.registry)
        self.publishers = Gauge("liveshow_publishers", "Live publishers", registry=self.registry)
        self.viewers = Gauge("liveshow_viewers", "Connected WHEP viewers", registry=self.registry)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
