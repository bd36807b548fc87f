"""LL-HLS: what the muxing costs and how far behind the publisher HLS viewers watch (target < 3 s).

    .venv/bin/python bench/hls.py --seconds 30 --viewers 3

1. Muxing cost: 720p30 H.264 (~1.5 Mbps) and 20 ms Opus frames, encoded up front, pushed flat out
   through the HLS sink (liveshow/hls/stream.py, the MediaSink on the relay): microseconds per frame on
   the relay's event loop, and per second of a live show.
2. Latency, through the deployment: two liveshow processes behind nginx (config/nginx.conf, caching),
   real Redis and PostgreSQL (a database of its own, dropped after). The studio publishes from
   Chromium's fake camera over WHIP; ``--viewers`` pages forced to HLS (``?hls``) play through nginx.
   Every 0.5 s each viewer reports ``Date.now() - hls.playingDate``: the playlist's PROGRAM-DATE-TIME
   is the wall time at which the segment's first frame reached the server, so this is *server to
   screen* for the frame on screen. The publisher's side (capture, encode, pacing; loopback network)
   comes from the studio's WebRTC stats (mean encode time + mean packet send delay); their sum plus one
   display frame is the glass-to-glass estimate. A plain HTTP client also fetches each preload-hinted
   part as the players do (a blocking request): *part served after its first frame arrived*.
3. Audience: ``--clients`` plain-HTTP clients follow the live edge the same way, all at once, through
   nginx: how many of their requests reach liveshow (the cache lock lets one per object through), the
   CPU of the liveshow processes and of nginx, and the part latency they see.

Prints percentiles and every count that could hide a failure (samples, stalls, errors, requests that
reached the liveshow processes versus requests the players made).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stack import Stack
from liveshow.hls.stream import HlsStream
from liveshow.media import synthetic

PASSWORD = "bench password 1"
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--autoplay-policy=no-user-gesture-required",
]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def summary(name: str, values: list[float], unit: str = "ms") -> None:
    if not values:
        print(f"  {name}: no samples")
        return
    print(
        f"  {name}: p50 {pct(values, 0.5):.0f} {unit}, p95 {pct(values, 0.95):.0f} {unit},"
        f" max {max(values):.0f} {unit}, mean {statistics.fmean(values):.0f} {unit} ({len(values)} samples)"
    )


# ---------------------------------------------------------------- 1. muxing cost


def mux_cost(seconds: int = 10) -> None:
    video = list(synthetic.video_frames(seconds, width=1280, height=720, bitrate=1_500_000, gop=60))
    audio = list(synthetic.audio_frames(seconds))
    frames = synthetic.interleaved(video, audio)
    stream = HlsStream(1, audio=True, want_keyframe=lambda: None, clock_ms=lambda: 0)
    began = time.perf_counter()
    for frame in frames:
        stream.on_frame(frame)
    wall = time.perf_counter() - began
    parts = sum(len(s.parts) for s in stream.window.segments)
    mbps = sum(len(f.data) for f in video) * 8 / seconds / 1e6
    print(f"1. muxing {len(video)} video frames ({mbps:.2f} Mbps 720p30) and {len(audio)} Opus frames:")
    print(
        f"  {stream.mux_ns / len(frames) / 1000:.1f} µs per frame on the event loop,"
        f" {wall / seconds * 1000:.1f} ms per second of show ({wall / seconds * 100:.2f} % of a core);"
        f" {parts} parts, {len(stream.window.segments)} segments"
    )


# ---------------------------------------------------------------- 2. latency through nginx


def create_database() -> tuple[str, str]:
    import psycopg

    name = f"liveshow_bench_{secrets.token_hex(4)}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_PDT = re.compile(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)")


def part_started(lines: list[str], uri: str) -> float:
    """When the part ``uri`` of a media playlist began (epoch s): the program date-time above it plus
    the durations of the parts between. StopIteration or ValueError when the playlist does not say."""
    at = next(i for i, line in enumerate(lines) if f'URI="{uri}"' in line)
    dated = max(i for i, line in enumerate(lines[:at]) if _PDT.match(line))
    match = _PDT.match(lines[dated])
    assert match is not None
    start = datetime.fromisoformat(match[1].replace("Z", "+00:00")).timestamp()
    return start + sum(
        float(line.split("DURATION=")[1].split(",")[0])
        for line in lines[dated:at]
        if line.startswith("#EXT-X-PART:")
    )


def preload_hint(lines: list[str]) -> str:
    """The URI of the playlist's preload hint (the part to ask for next); StopIteration without one."""
    last = next(line for line in reversed(lines) if line.startswith("#EXT-X-PRELOAD-HINT"))
    return last.split('URI="')[1].rstrip('"')


def part_probe(url: str, show_id: int, stop: threading.Event, out: list[float], errors: list[str]) -> None:
    """Follow the live edge as an LL-HLS player does, and time each part's arrival against the arrival
    of its first frame at the server: fetch the hinted part (held until it exists), then the playlist
    held until it lists that part (which gives the part's start time and the next hint)."""
    hint: str | None = None
    with httpx.Client(follow_redirects=True, timeout=10) as client:
        base = f"{url}/hls/{show_id}"
        while not stop.is_set():
            try:
                query = ""
                received = 0.0
                if hint is not None:
                    part = client.get(f"{base}/{hint}")
                    received = time.time()
                    if part.status_code != 200:
                        errors.append(f"part {part.status_code}")
                        hint = None
                        continue
                    msn, index = hint.rsplit("/", 1)[1].removesuffix(".m4s").split(".")
                    query = f"?_HLS_msn={msn}&_HLS_part={index}"
                playlist = client.get(f"{base}/live.m3u8{query}")
                if playlist.status_code != 200:
                    errors.append(f"playlist {playlist.status_code}")
                    hint = None
                    time.sleep(0.2)
                    continue
                base = str(playlist.url).rsplit("/", 1)[0]
                lines = playlist.text.splitlines()
                if hint is not None:
                    out.append((received - part_started(lines, hint)) * 1000)
                hint = preload_hint(lines)
            except (httpx.HTTPError, StopIteration, ValueError) as exc:
                errors.append(type(exc).__name__)
                hint = None
                time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


async def follow_live_edge(
    client: httpx.AsyncClient, base: str, until: float, latencies: list[float], counts: dict[str, int]
) -> None:
    """One LL-HLS client: the hinted part (held until it exists), then the playlist held until it lists
    it, again and again; each part's arrival is timed against its first frame's arrival at the server."""
    hint: str | None = None
    while time.monotonic() < until:
        query, received = "", 0.0
        try:
            if hint is not None:
                part = await client.get(f"{base}/{hint}")
                counts["requests"] += 1
                received = time.time()
                if part.status_code != 200:
                    counts[f"part {part.status_code}"] = counts.get(f"part {part.status_code}", 0) + 1
                    hint = None
                    continue
                msn, index = hint.rsplit("/", 1)[1].removesuffix(".m4s").split(".")
                query = f"?_HLS_msn={msn}&_HLS_part={index}"
            playlist = await client.get(f"{base}/live.m3u8{query}")
            counts["requests"] += 1
            if playlist.status_code != 200:
                counts[f"playlist {playlist.status_code}"] = (
                    counts.get(f"playlist {playlist.status_code}", 0) + 1
                )
                hint = None
                await asyncio.sleep(0.2)
                continue
            base = str(playlist.url).rsplit("/", 1)[0]
            lines = playlist.text.splitlines()
            if hint is not None:
                latencies.append((received - part_started(lines, hint)) * 1000)
            hint = preload_hint(lines)
        except (httpx.HTTPError, StopIteration, ValueError) as exc:
            counts[type(exc).__name__] = counts.get(type(exc).__name__, 0) + 1
            hint = None
            await asyncio.sleep(0.2)


def audience(stack: Stack, show_id: int, clients: int, seconds: int) -> None:
    """``clients`` plain-HTTP LL-HLS clients through nginx at once: what reaches liveshow, and its CPU."""

    def hls_lines() -> int:
        return sum(stack.log_tail(i, 10**9).count('"GET /hls/') for i in range(len(stack.ports)))

    assert stack.nginx is not None
    nginx = [stack.nginx.pid, *children(stack.nginx.pid)]
    servers = [proc.pid for proc in stack.procs]
    latencies: list[float] = []
    counts = {"requests": 0}

    async def run() -> None:
        limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients * 2)
        async with httpx.AsyncClient(follow_redirects=True, timeout=15, limits=limits) as client:
            until = time.monotonic() + seconds
            base = f"{stack.url}/hls/{show_id}"
            await asyncio.gather(
                *(follow_live_edge(client, base, until, latencies, counts) for _ in range(clients))
            )

    upstream_before = hls_lines()
    cpu_before = [sum(cpu_seconds(p) for p in servers), sum(cpu_seconds(p) for p in nginx)]
    began = time.monotonic()
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    worker = threading.Thread(target=lambda: asyncio.run(run()), name="hls-audience")
    worker.start()
    worker.join()
    wall = time.monotonic() - began
    time.sleep(0.5)  # the access log lines of the last requests
    upstream = hls_lines() - upstream_before
    cpu = [
        sum(cpu_seconds(p) for p in servers) - cpu_before[0],
        sum(cpu_seconds(p) for p in nginx) - cpu_before[1],
    ]
    print(f"3. {clients} plain-HTTP LL-HLS clients through nginx at once (one Python process), {seconds} s:")
    summary("part received after its first frame reached the server", latencies)
    print(
        f"  client requests {counts['requests']} ({counts['requests'] / wall:.0f}/s);"
        f" reaching liveshow {upstream} ({upstream / wall:.0f}/s,"
        f" {upstream / max(1, counts['requests']) * 100:.1f} %)"
    )
    print(
        f"  CPU: liveshow processes {cpu[0] / wall * 100:.1f} % of a core (both; publisher, room included),"
        f" nginx {cpu[1] / wall * 100:.1f} %"
    )
    per_client = counts["requests"] / wall / clients
    print(
        f"  counts: {len(latencies)} parts received, outcomes {counts}; {per_client:.1f} requests/s per"
        " client (one keeping up makes ~9: a part and a playlist per part; fewer means this client"
        " process, not the server, fell behind, and its part latency is its own lag)"
    )


def latency(seconds: int, viewers: int, clients: int) -> None:
    from playwright.sync_api import sync_playwright
    from sqlmodel import select

    from liveshow.db import Database
    from liveshow.demo import SELLER, load_demo
    from liveshow.settings import Settings
    from liveshow.shows.models import Show

    name, db_url = create_database()
    workdir = Path(tempfile.mkdtemp(prefix="liveshow-bench-hls-"))
    stack = Stack(
        workdir, db_url, "redis://127.0.0.1:6379/0", f"bench-hls-{secrets.token_hex(3)}", processes=2
    )
    try:
        stack.liveshow("migrate")
        db = Database(db_url)
        load_demo(db, Settings(data_dir=workdir / "data", database_url=db_url), PASSWORD)
        with db.session() as session:
            show_id = session.exec(select(Show)).one().id or 0
        db.close()
        stack.start()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
            )
            run_latency(browser, stack, show_id, seconds, viewers, SELLER, clients)
            browser.close()
    finally:
        stack.stop()
        drop_database(name)
        upstream = sum(stack.log_tail(i, 10**9).count('"GET /hls/') for i in range(len(stack.ports)))
        print(f"  requests for /hls/ that reached the liveshow processes: {upstream}")


def run_latency(
    browser: Any, stack: Stack, show_id: int, seconds: int, viewers: int, seller: str, clients: int
) -> None:
    studio_ctx = browser.new_context()
    studio_ctx.grant_permissions(["camera", "microphone"])
    studio = studio_ctx.new_page()
    # Keep the studio's peer connections within reach, for its encoder statistics.
    studio.add_init_script(
        "const Native = window.RTCPeerConnection; window.__pcs = [];"
        "window.RTCPeerConnection = function (...args) { const pc = new Native(...args);"
        " window.__pcs.push(pc); return pc; };"
        "window.RTCPeerConnection.prototype = Native.prototype;"
    )
    studio.goto(f"{stack.url}/signin")
    studio.fill("#username", seller)
    studio.fill("#password", PASSWORD)
    studio.get_by_role("button", name="Sign in").click()
    studio.wait_for_url(lambda url: "/signin" not in url)
    studio.goto(f"{stack.url}/studio/{show_id}")
    studio.wait_for_function("document.getElementById('studio-preview').videoWidth > 0")
    studio.get_by_role("button", name="Go live").click()
    studio.wait_for_function("document.getElementById('studio-connection').textContent === 'connected'")

    pages, requests = [], [0]
    for _ in range(viewers):
        page = browser.new_context().new_page()
        page.on("request", lambda r: requests.__setitem__(0, requests[0] + 1) if "/hls/" in r.url else None)
        page.goto(f"{stack.url}/shows/{show_id}?hls")
        pages.append(page)
    for page in pages:
        page.wait_for_function("document.getElementById('player-video').currentTime > 1", timeout=60_000)
        page.evaluate(
            "window.__stalls = 0; document.getElementById('player-video')"
            ".addEventListener('waiting', () => { window.__stalls += 1; })"
        )
    stop = threading.Event()
    probes: list[float] = []
    errors: list[str] = []
    probe = threading.Thread(target=part_probe, args=(stack.url, show_id, stop, probes, errors), daemon=True)
    probe.start()
    screen, estimate, missing = [], [], 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for page in pages:
            sample = page.evaluate(
                """() => { const h = window.liveshowPlayer && window.liveshowPlayer.hls;
                   if (!h || !h.playingDate) return null;
                   return [Date.now() - h.playingDate.getTime(), h.latency * 1000]; }"""
            )
            if sample is None:
                missing += 1
            else:
                screen.append(float(sample[0]))
                estimate.append(float(sample[1]))
        time.sleep(0.5)
    stop.set()
    probe.join(15)
    publisher = studio.evaluate(
        """async () => { const pc = window.__pcs[window.__pcs.length - 1]; let r = null;
           const stats = pc ? await pc.getStats() : new Map();
           stats.forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'video' && s.framesEncoded)
             r = [s.totalEncodeTime / s.framesEncoded * 1000,
                  (s.totalPacketSendDelay || 0) / s.packetsSent * 1000,
                  s.encoderImplementation, s.frameWidth, s.frameHeight, s.framesPerSecond]; });
           return r; }"""
    )
    stalls = sum(int(page.evaluate("window.__stalls")) for page in pages)
    modes = [page.locator("#player-mode").inner_text() for page in pages]
    print(f"2. LL-HLS through nginx, {viewers} hls.js viewers in headless Chromium, {seconds} s:")
    summary("server to screen (Date.now() - hls.playingDate)", screen)
    summary("hls.js latency estimate (to the live edge)", estimate)
    summary("part received after its first frame reached the server (blocking fetch)", probes)
    if publisher:
        encode, pacing, impl, width, height, fps = publisher
        print(
            f"  publisher (studio, {impl} {width}x{height} @ {fps} fps): encode {encode:.1f} ms,"
            f" send delay {pacing:.1f} ms per frame (loopback network)"
        )
        g2g = [s + encode + pacing + 1000 / 60 for s in screen]
        summary("glass to glass (estimate: publisher + server to screen + one display frame)", g2g)
    else:
        print("  publisher stats: unavailable; glass to glass not estimated")
    print(
        f"  counts: {len(screen)} samples, {missing} without a playing date, {stalls} stalls after start,"
        f" {len(probes)} parts probed, {len(errors)} probe errors {sorted(set(errors))[:5]},"
        f" {requests[0]} /hls/ requests by the players; modes shown: {sorted(set(modes))}"
    )
    for page in pages:
        page.context.close()  # the studio goes on publishing for part 3
    if clients:
        audience(stack, show_id, clients, seconds)
    studio_ctx.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--viewers", type=int, default=3)
    parser.add_argument(
        "--clients", type=int, default=100, help="plain HTTP LL-HLS clients in part 3 (0: skip)"
    )
    args = parser.parse_args()
    mux_cost()
    latency(args.seconds, args.viewers, args.clients)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
