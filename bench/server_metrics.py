"""The servers' own view of a benchmark step: their Prometheus histograms, scraped at each step's
boundaries and differenced, so that a step's figures hold only that step's observations."""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict

import httpx
from prometheus_client.parser import text_string_to_metric_families

# (sample name, sorted labels) -> value, summed over the servers
Snapshot = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _auth() -> dict[str, str]:
    """The servers' LIVESHOW_METRICS_TOKEN when one is set; without it they answer loopback scrapes."""
    token = os.environ.get("LIVESHOW_METRICS_TOKEN", "")
    return {"Authorization": f"Bearer {token}"} if token else {}


def scrape(addrs: list[tuple[str, int]]) -> Snapshot:
    sums: Snapshot = defaultdict(float)
    for host, port in addrs:
        text = httpx.get(f"http://{host}:{port}/metrics", headers=_auth(), timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                sums[(sample.name, tuple(sorted(sample.labels.items())))] += sample.value
    sums[("bench_wall_seconds", ())] = time.time()  # not summed: when the step's scrape was taken
    return dict(sums)


class StepScraper(threading.Thread):
    """Scrapes at each of ``times`` (epoch seconds); ``snapshots[i]`` is the one taken at ``times[i]``."""

    def __init__(self, addrs: list[tuple[str, int]], times: list[float]) -> None:
        super().__init__(daemon=True)
        self.addrs, self.times = addrs, times
        self.snapshots: list[Snapshot] = []

    def run(self) -> None:
        for at in self.times:
            time.sleep(max(0.0, at - time.time()))
            try:
                self.snapshots.append(scrape(self.addrs))
            except httpx.HTTPError:
                self.snapshots.append({})


def quantile_ms(before: Snapshot, after: Snapshot, name: str, labels: dict[str, str], q: float) -> float:
    """The upper bound (ms) of the bucket holding the q-quantile of the step's observations."""
    wanted = tuple(sorted(labels.items()))
    buckets: list[tuple[float, float]] = []
    for (sample, label_items), value in after.items():
        if sample != f"{name}_bucket":
            continue
        rest = tuple((k, v) for k, v in label_items if k != "le")
        if rest != wanted:
            continue
        le = dict(label_items)["le"]
        buckets.append((float(le), value - before.get((sample, label_items), 0.0)))
    buckets.sort()
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    target = q * buckets[-1][1]
    for bound, count in buckets:
        if count >= target:
            return bound * 1000
    return float("inf")


def total(before: Snapshot, after: Snapshot, name: str) -> float:
    """A label-less sample's growth over the step, summed over the servers."""
    return after.get((name, ()), 0.0) - before.get((name, ()), 0.0)


def count(before: Snapshot, after: Snapshot, name: str, labels: dict[str, str]) -> float:
    key = (f"{name}_count", tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def gc_max_ms(before: Snapshot, after: Snapshot) -> float:
    """The longest collection pause of the step, any generation (its bucket's upper bound)."""
    pauses = [quantile_ms(before, after, "liveshow_gc_pause_seconds", {"generation": g}, 1.0) for g in "012"]
    return max((p for p in pauses if p == p), default=float("nan"))  # NaN: no collection of that kind


def writer_report(steps: list[float], snapshots: list[Snapshot]) -> None:
    """Per step, from the servers: the answer time of a bid inside the servers and the leader's
    batch stages, the processes' garbage-collector pauses and event-loop lag (bucket upper bounds,
    so "≤ x ms")."""
    stage = "liveshow_auction_batch_stage_seconds"
    answer = "liveshow_auction_answer_seconds"
    gc_pause = "liveshow_gc_pause_seconds"
    print("inside the servers, per step (histogram bucket bounds, ms):")
    print(
        f"{'offered/s':>9} {'batches':>7} {'cmds p50':>8} {'answer p50':>10} {'answer p99':>10} "
        f"{'decide p99':>10} {'persist p50':>11} {'persist p99':>11} "
        f"{'announce p50':>12} {'announce p99':>12} {'full GCs':>8} {'GC max':>6} "
        f"{'loop lag p99':>12} {'lag max':>7} {'CPU':>5} {'CPU ms/1k cmds':>14}"
    )
    for i, rate in enumerate(steps):
        if i + 1 >= len(snapshots) or not snapshots[i] or not snapshots[i + 1]:
            continue
        a, b = snapshots[i], snapshots[i + 1]
        batches = count(a, b, "liveshow_auction_batch_commands", {})
        decided = total(a, b, "liveshow_auction_batch_commands_sum")
        cpu_s = total(a, b, "process_cpu_seconds_total")
        span = total(a, b, "bench_wall_seconds")
        cmds = quantile_ms(a, b, "liveshow_auction_batch_commands", {}, 0.5) / 1000
        print(
            f"{rate:>9.0f} {batches:>7.0f} {cmds:>8.0f} "
            f"{quantile_ms(a, b, answer, {'kind': 'bid'}, 0.5):>10.1f} "
            f"{quantile_ms(a, b, answer, {'kind': 'bid'}, 0.99):>10.1f} "
            f"{quantile_ms(a, b, stage, {'stage': 'decide'}, 0.99):>10.1f} "
            f"{quantile_ms(a, b, stage, {'stage': 'persist'}, 0.5):>11.1f} "
            f"{quantile_ms(a, b, stage, {'stage': 'persist'}, 0.99):>11.1f} "
            f"{quantile_ms(a, b, stage, {'stage': 'announce'}, 0.5):>12.1f} "
            f"{quantile_ms(a, b, stage, {'stage': 'announce'}, 0.99):>12.1f} "
            f"{count(a, b, gc_pause, {'generation': '2'}):>8.0f} {gc_max_ms(a, b):>6.1f} "
            f"{quantile_ms(a, b, 'liveshow_loop_lag_seconds', {}, 0.99):>12.1f} "
            f"{quantile_ms(a, b, 'liveshow_loop_lag_seconds', {}, 1.0):>7.1f} "
            f"{100 * cpu_s / span if span else float('nan'):>4.0f}% "
            f"{1e6 * cpu_s / decided if decided else float('nan'):>14.0f}"
        )
