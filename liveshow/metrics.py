"""Prometheus metrics, one registry per app so several apps can live in one test process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

# Sub-millisecond to a quarter second: where a show writer's stages and its answers live.
FINE_SECONDS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # process_cpu_seconds_total and friends: what a step of a benchmark cost the server
        ProcessCollector(registry=self.registry)
        self.http_requests = Counter(
            "liveshow_http_requests", "HTTP requests", ["method", "status"], registry=self.registry
        )
        self.http_latency = Histogram(
            "liveshow_http_request_seconds", "HTTP request latency", ["method"], registry=self.registry
        )
        self.websockets = Gauge("liveshow_websockets", "Open WebSocket connections", registry=self.registry)
        self.auction_shows_led = Gauge(
            "liveshow_auction_shows_led",
            "Shows whose claims and bids this process decides",
            registry=self.registry,
        )
        self.publishers = Gauge("liveshow_publishers", "Live publishers", registry=self.registry)
        self.viewers = Gauge("liveshow_viewers", "Connected WHEP viewers", registry=self.registry)
        self.auction_answer = Histogram(
            "liveshow_auction_answer_seconds",
            "Claim, bid or host command: from this process handing it to the show's writer to the answer",
            ["kind"],
            buckets=FINE_SECONDS,
            registry=self.registry,
        )
        # Bound once: looking a label up costs more than the observation, once per bid.
        self.auction_answer_by_kind = {k: self.auction_answer.labels(k) for k in ("claim", "bid", "host")}
        self.auction_stage = Histogram(
            "liveshow_auction_batch_stage_seconds",
            "A show writer's batch, by stage (prepare, decide, persist, announce)",
            ["stage"],
            buckets=FINE_SECONDS,
            registry=self.registry,
        )
        self.loop_lag = Histogram(
            "liveshow_loop_lag_seconds",
            "How late the event loop woke a 10 ms timer",
            buckets=(*FINE_SECONDS, 0.5, 1.0),
            registry=self.registry,
        )
        self.gc_pause = Histogram(
            "liveshow_gc_pause_seconds",
            "Garbage-collector pauses of the whole process, by generation",
            ["generation"],
            buckets=(*FINE_SECONDS, 0.5, 1.0),
            registry=self.registry,
        )
        self.auction_batch = Histogram(
            "liveshow_auction_batch_commands",
            "Commands per show writer batch",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=self.registry,
        )

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
