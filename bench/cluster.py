"""Edges benchmark: one origin and two edges on this machine, viewers spread over the edges.

Processes: four liveshow servers on a private Redis and one SQLite file (``uvicorn --factory`` as
``bench/faults.py`` starts them): the origin holds the publisher (``bench/relay.py``'s 720p30 VP8 clip,
not transcoded anywhere), E1 and E2 are edges pulling from it (``media_edge_fanout`` 2: the origin
feeds two edges), and E3 is an edge of an edge, used only to time the second hop. Viewers are
``bench/relay.py``'s counting viewer processes (ICE and DTLS, then RTP headers counted: no decoding).

Phases, all in one run:
1. the origin alone (the publisher only): its idle CPU;
2. hops: one tap viewer each on the origin, E1, E2 (each edge's first viewer: its first frame includes
   the pull) and E3 (its pull goes to E1 or E2), recording every video frame's arrival by a hash of its
   bytes (the same bytes at every hop): first-frame time per process and the added latency per hop;
   then warm first-frame probes (``relay.py probe``) on the origin, an edge and the edge of an edge;
3. cluster ramp: viewers spread over E1 and E2, step by step: the largest total held at 30 fps with
   < 1 % loss, each process's CPU, the origin's CPU per edge (its CPU over idle, per pulling edge,
   which should not grow with the edges' audience), CPU per viewer per edge;
4. single-process ramp: the same steps of viewers on the origin itself: its largest N, and the ratio.

On a 2-core machine the four servers, the viewer processes and the publisher share the cores: the
ratio is bounded by the cores, not by the design; CPU per viewer per process is the figure that scales.

    .venv/bin/python bench/cluster.py                # default, about 4 minutes
    .venv/bin/python bench/cluster.py --short        # what tests/test_bench_cluster.py runs
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from aiortc import RTCPeerConnection, RTCSessionDescription

from bench import machine, relay
from bench.faults import Server
from bench.services import PrivateRedis
from bench.tally import ViewerWindow, relay_held, relay_step, relay_summary

FANOUT = 2  # edges the origin feeds: E1 and E2; E3 must then pull from one of them


# ------------------------------------------------------------------ setup


def setup_show(db_url: str, migrate: bool = True) -> tuple[int, str]:
    """A seller and a scheduled show, written directly (the publisher takes it live)."""
    from liveshow.accounts.models import User
    from liveshow.db import Database
    from liveshow.db import migrate as run_migrations
    from liveshow.shows.models import Show

    if migrate:
        run_migrations(db_url)
    db = Database(db_url)
    with db.session() as s:
        seller = User(username=f"edge-seller-{secrets.token_hex(3)}", password_hash="x")
        s.add(seller)
        s.commit()
        show = Show(seller_id=seller.id or 0, title="Edges", stream_key=secrets.token_hex(8))
        s.add(show)
        s.commit()
        out = (show.id or 0, show.stream_key)
    db.close()
    return out


def server_env(workdir: Path, redis_url: str, db_url: str) -> dict[str, str]:
    return {
        "LIVESHOW_DATABASE_URL": db_url,
        "LIVESHOW_BUS_URL": redis_url,
        "LIVESHOW_BUS_PREFIX": "bench",
        "LIVESHOW_SECRET_KEY": secrets.token_urlsafe(24),
        "LIVESHOW_ICE_INTERFACES": "127.0.0.1",  # media on loopback, as in the tests
        "LIVESHOW_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        "LIVESHOW_LIMIT_WHEP_ADDRESS": "off",  # every viewer comes from 127.0.0.1
        "LIVESHOW_MAX_WHEP_PER_ADDRESS": "0",
        "LIVESHOW_MAX_WHEP_PER_SHOW": "0",
        "LIVESHOW_MEDIA_EDGE_FANOUT": str(FANOUT),
        "LIVESHOW_MEDIA_EDGE_GRACE_SECONDS": "600",  # edges keep their pulls between the phases
    }


def start_servers(workdir: Path, env: dict[str, str], names: list[str]) -> list[Server]:
    servers = []
    for name in names:
        data = workdir / name
        data.mkdir(parents=True, exist_ok=True)
        server = Server({**env, "LIVESHOW_DATA_DIR": str(data)}, name)
        server.env["LIVESHOW_ADVERTISE_URL"] = server.url
        server.start()
        servers.append(server)
    return servers


def media_status(base: str, show_id: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/api/shows/{show_id}/media", timeout=5) as resp:
        status: dict[str, Any] = json.loads(resp.read())
        return status


def wait_live(base: str, show_id: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while media_status(base, show_id)["state"] != "live":
        if time.monotonic() > deadline:
            raise RuntimeError("the show did not go live")
        time.sleep(0.1)


def metric(base: str, name: str) -> float:
    """One unlabelled sample of a server's /metrics (loopback: no token needed); 0 when absent."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def cpu_rate(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """Each process's CPU (cores) over the next ``seconds``."""
    c0 = {name: relay.cpu_seconds(pid) for name, pid in pids.items()}
    t0 = time.time()
    time.sleep(seconds)
    elapsed = time.time() - t0
    return {name: (relay.cpu_seconds(pid) - c0[name]) / elapsed for name, pid in pids.items()}


# ------------------------------------------------------------------ hops: frames by their bytes


class TapViewer:
    """A WHEP viewer that keeps every video frame's arrival time by a hash of its encoded bytes
    (``liveshow.media.peers.tap_receiver``: the receiver's RTP work, no decoder)."""

    def __init__(self) -> None:
        from liveshow.signaling.client import NO_ICE_SERVERS

        self.pc = RTCPeerConnection(NO_ICE_SERVERS)
        self.arrivals: dict[bytes, list[float]] = {}
        self.t0 = 0.0
        self.first: float | None = None

    async def join(self, url: str) -> None:
        from liveshow.media.peers import tap_receiver

        self.t0 = time.monotonic()
        for kind in ("video", "audio"):
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            # Frames, not packets: a frame is known by its bytes at every hop (a viewer's packets are
            # renumbered). Each viewer's jitter buffer holds a frame until the next one starts, the same
            # interval at every hop, so the differences between hops are the hops' own.
            if kind == "video":
                tap_receiver(transceiver, self._frame, lambda codec, packet: None)
            else:
                tap_receiver(transceiver, lambda codec, data, ts: None, lambda codec, packet: None)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(
                url, content=self.pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
            )
        if r.status_code != 201:
            raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]}")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))

    def _frame(self, codec: str, data: bytes, ts: int) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = now
        self.arrivals.setdefault(hashlib.blake2b(data, digest_size=8).digest(), []).append(now)


def hop_delays(near: TapViewer, far: TapViewer) -> list[float]:
    """Per frame both received once (the clip loops: a repeated frame is ambiguous), far - near."""
    out = []
    for key, times in near.arrivals.items():
        other = far.arrivals.get(key)
        if len(times) == 1 and other is not None and len(other) == 1:
            out.append(other[0] - times[0])
    return out


async def run_hops(urls: list[str], seconds: float) -> None:
    """Join one tap viewer per URL, in order (origin, E1, E2, E3), then record ``seconds`` of frames."""
    viewers = []
    for url in urls:
        viewer = TapViewer()
        await viewer.join(url)
        deadline = time.monotonic() + 20
        while viewer.first is None and time.monotonic() < deadline:  # noqa: ASYNC110 (set by a callback)
            await asyncio.sleep(0.005)
        viewers.append(viewer)
    for viewer in viewers:
        viewer.arrivals.clear()  # frames from before everyone was joined are not comparable
    await asyncio.sleep(seconds)
    origin = viewers[0]
    out = {
        "ttff": [(v.first - v.t0) if v.first is not None else None for v in viewers],
        "frames": [sum(len(t) for t in v.arrivals.values()) for v in viewers],
        "delays": [hop_delays(origin, v) for v in viewers[1:]],
    }
    for viewer in viewers:
        await viewer.pc.close()
    print(json.dumps(out), flush=True)


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} ms" if values else "-"


# ------------------------------------------------------------------ ramps


def ramp(
    label: str,
    procs: list[subprocess.Popen[str]],
    targets: list[str],
    steps: list[int],
    window: float,
    pids: dict[str, int],
    idle: dict[str, float],
    pulls: int,
    bases: dict[str, str],
    control: subprocess.Popen[str] | None = None,
) -> list[dict[str, Any]]:
    """Grow the audience over ``procs`` (one viewer process per target process), step by step; each
    step's figures over a window: fps and loss (bench/tally.py), each server's CPU, and for an edge
    the frame rate its pull received and the keyframe requests it sent upstream (/metrics).
    ``control``: a viewer process with one viewer on the origin, counted apart: when it loses frames
    too, the source (publisher, origin ingest, the machine) lost them, not the edges."""
    rows: list[dict[str, Any]] = []
    joined = [0] * len(procs)
    for n in steps:
        share = [n // len(procs) + (1 if i < n % len(procs) else 0) for i in range(len(procs))]
        failed = 0
        for i, proc in enumerate(procs):
            if share[i] > joined[i]:
                reply = relay.ask(proc, f"add {share[i] - joined[i]}")
                joined[i], failed = reply["joined"], failed + reply["failed"]
        time.sleep(1.5)  # first keyframes out, queues settle
        for proc in [*procs, *([control] if control else [])]:
            relay.ask(proc, "start")
        clients = {f"viewers{i}": proc.pid for i, proc in enumerate(procs)}
        edges = sorted({t for t in targets if t != "origin"})
        before = {
            e: (
                metric(bases[e], "liveshow_edge_video_frames_total"),
                metric(bases[e], "liveshow_edge_keyframe_requests_total"),
            )
            for e in edges
        }
        measured = cpu_rate({**pids, **clients}, window)
        pull_in = {
            e: (
                (metric(bases[e], "liveshow_edge_video_frames_total") - before[e][0]) / window,
                metric(bases[e], "liveshow_edge_keyframe_requests_total") - before[e][1],
            )
            for e in edges
        }
        cpu = {name: measured[name] for name in pids}
        client_cpu = sum(measured[name] for name in clients)
        viewers: list[dict[str, Any]] = []
        per_target: dict[str, int] = {}
        for proc, target in zip(procs, targets, strict=True):
            got = relay.ask(proc, "end")["viewers"]
            viewers += got
            per_target[target] = per_target.get(target, 0) + len(got)
        windows = [ViewerWindow(v["frames"], v["expected"], v["window"]) for v in viewers]
        control_text = ""
        if control is not None:
            mine = relay.ask(control, "end")["viewers"]
            c_fps, c_loss = relay_step(
                [ViewerWindow(v["frames"], v["expected"], v["window"]) for v in mine], 0, 1
            )
            control_text = f"  control viewer on the origin: {c_fps:.1f} fps, loss {c_loss * 100:.2f}%"
        fps, loss = relay_step(windows, failed, n)
        busiest = max(cpu.values())
        failures = relay_held(loss, fps, busiest, failed)
        # CPU per viewer on each process serving viewers: its CPU over its idle (publisher or pull)
        per_viewer = {
            t: (cpu[t] - idle.get(t, 0.0)) / count * 1000 for t, count in per_target.items() if count
        }
        per_edge = (cpu["origin"] - idle["origin"]) / pulls if pulls else None
        row: dict[str, Any] = {
            "mode": label,
            "n": n,
            "joined": len(viewers),
            "failed": failed,
            "fps": fps,
            "loss": loss,
            "cpu": cpu,
            "client_cpu": client_cpu,
            "pull_in": pull_in,
            "per_target": per_target,
            "cpu_per_viewer_ms": statistics.median(per_viewer.values()) if per_viewer else float("nan"),
            "per_viewer_ms": per_viewer,
            "origin_cpu_per_edge": per_edge,
            "failures": failures,
        }
        rows.append(row)
        cpus = " ".join(f"{k} {v * 100:5.1f}%" for k, v in cpu.items())
        each = " ".join(f"{k} {v:.2f}" for k, v in per_viewer.items())
        print(
            f"{label:7} N={n:4d} joined {len(viewers)} failed {failed}  fps {fps:4.1f}  frame loss "
            f"{loss * 100:5.2f}%  cpu: {cpus}  ms/s per viewer: {each}  viewer procs {client_cpu * 100:.0f}%"
            f"  load {os.getloadavg()[0]:.1f}"
            + "".join(f"  {e} pull {fps_in:.1f} fps, {kf:.0f} PLI up" for e, (fps_in, kf) in pull_in.items())
            + control_text
            + (f"  origin per edge {per_edge * 100:.1f}%" if per_edge is not None else "")
            + ("  held" if not failures else "  FAILED: " + "; ".join(failures)),
            flush=True,
        )
        if loss > 0.05 or busiest > 0.97:
            break
    return rows


def quit_all(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("quit\n")
        proc.stdin.flush()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ orchestration


def edge_tree(redis_url: str, show_id: int) -> dict[str, str]:
    """URL -> the URL it pulls from, as the edges announce it."""
    from liveshow.media.edgeregistry import RedisEdges

    async def read() -> dict[str, str]:
        registry = RedisEdges(redis_url, "bench", 8.0)
        try:
            return {e.url: e.upstream for e in await registry.edges(show_id)}
        finally:
            await registry.close()

    return asyncio.run(read())


def probe_ttff(url: str, count: int) -> list[float]:
    probe = relay.spawn("probe", url, str(count))
    out, _ = probe.communicate(timeout=60 + count * 15)
    ttffs: list[float] = json.loads(out.strip().splitlines()[-1])["ttff"]
    return sorted(ttffs)


def run(args: argparse.Namespace) -> int:
    relay.make_clip()
    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="liveshow-cluster-"))
    redis = PrivateRedis(workdir / "redis")
    redis.start()
    db_url = f"sqlite:///{workdir / 'cluster.db'}"
    show_id, key = setup_show(db_url)
    env = server_env(workdir, redis.url, db_url)
    servers: list[Server] = []
    procs: list[subprocess.Popen[str]] = []
    failed: list[str] = []
    try:
        servers = start_servers(workdir, env, ["origin", "e1", "e2", "e3"])
        origin = servers[0]
        names = {s.url: s.name for s in servers}
        pids = {s.name: s.proc.pid for s in servers if s.proc is not None}
        whep = {s.name: f"{s.url}/whep/{show_id}" for s in servers}
        publisher = relay.spawn("publish", f"{origin.url}/whip/{show_id}", key)
        procs.append(publisher)
        assert publisher.stdout is not None
        publisher.stdout.readline()
        wait_live(origin.url, show_id)
        time.sleep(1.0)
        idle = cpu_rate(pids, 3.0)
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"publisher only: origin cpu {idle['origin'] * 100:.1f}%  (load average {load})", flush=True)

        # hops
        hops = spawn("hops", str(args.hop_seconds), whep["origin"], whep["e1"], whep["e2"], whep["e3"])
        out, _ = hops.communicate(timeout=120)
        hop = json.loads(out.strip().splitlines()[-1])
        tree = {names.get(k, k): names.get(v, v) for k, v in edge_tree(redis.url, show_id).items()}
        parent = tree.get("e3", "?")
        ttff = dict(zip(["origin", "e1", "e2", "e3"], hop["ttff"], strict=True))
        print(f"edge tree (edge <- feeder): {tree}", flush=True)
        print(
            "first frame, each process's first viewer (an edge's includes its pull): "
            + ", ".join(f"{k} {relay.fmt(v)}" for k, v in ttff.items()),
            flush=True,
        )
        one_hop = hop["delays"][0] + hop["delays"][1]
        two_hops = hop["delays"][2]
        print(
            f"frame arrival after the origin's viewer, same frames ({hop['frames']} frames seen per viewer "
            f"in {args.hop_seconds:g} s): edge {median_ms(one_hop)} (median of {len(one_hop)}), "
            f"edge of an edge ({parent}'s) {median_ms(two_hops)} (median of {len(two_hops)})",
            flush=True,
        )
        if not one_hop or not two_hops or tree.get("e3") not in ("e1", "e2"):
            failed.append("the hop measurement found no common frames or no edge of an edge")
        warm = {name: probe_ttff(whep[name], args.probes) for name in ("origin", "e1", "e3")}
        print(
            f"first frame, {args.probes} joins one at a time on a process already relaying: "
            + ", ".join(f"{k} p50 {relay.fmt(relay.pct(v, 50))}" for k, v in warm.items()),
            flush=True,
        )

        # the cluster: viewers on E1 and E2
        steps = [int(x) for x in args.steps.split(",")]
        per_edge = max(1, args.viewer_procs // 2)
        targets = ["e1"] * per_edge + ["e2"] * per_edge
        viewer_procs = [relay.spawn("viewers", whep[t]) for t in targets]
        procs += viewer_procs
        cluster_idle = dict(idle)
        cluster_idle.update({k: v for k, v in cpu_rate(pids, 2.0).items() if k in ("e1", "e2")})
        bases = {s.name: s.url for s in servers}
        control = relay.spawn("viewers", whep["origin"])
        procs.append(control)
        relay.ask(control, "add 1")
        cluster = ramp(
            "cluster",
            viewer_procs,
            targets,
            [s * 2 for s in steps],
            args.window,
            pids,
            cluster_idle,
            2,
            bases,
            control,
        )
        quit_all([*viewer_procs, control])
        procs = [p for p in procs if p not in viewer_procs and p is not control]
        deadline = time.monotonic() + 10  # the control viewer's session closing on the origin
        pulls_on_origin = media_status(origin.url, show_id)["viewers"]
        while pulls_on_origin > 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            pulls_on_origin = media_status(origin.url, show_id)["viewers"]

        # one process: viewers on the origin itself
        single_procs = [relay.spawn("viewers", whep["origin"]) for _ in range(per_edge * 2)]
        procs += single_procs
        single = ramp(
            "single", single_procs, ["origin"] * len(single_procs), steps, args.window, pids, idle, 0, bases
        )
        quit_all(single_procs)
        procs = [p for p in procs if p not in single_procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for server in servers:
            server.kill()
            server.log.close()
        redis.close()

    a, b = relay_summary(cluster), relay_summary(single)
    print("\nsummary                    cluster (origin + 2 edges)   one process   ratio")
    ratio = a["largest_n_ok"] / b["largest_n_ok"] if b["largest_n_ok"] else float("nan")
    held_a, held_b = a["largest_n_ok"], b["largest_n_ok"]
    print(f"viewers held (30fps <1%)   {held_a:>10}                  {held_b:>8}   {ratio:.2f}x")
    for label, rows, best in (("cluster", cluster, a), ("one process", single, b)):
        if rows and best["largest_n_ok"] == rows[-1]["n"] and not rows[-1]["failures"]:
            print(f"  ({label}: its last step held: at least {best['largest_n_ok']}; give --steps more)")
    held = [r for r in cluster if not r["failures"]]
    origin_per_edge = [r["origin_cpu_per_edge"] for r in held]
    print(
        "origin CPU per edge        "
        + (", ".join(f"{x * 100:.1f}%" for x in origin_per_edge) or "-")
        + "  (per held step, as the edges' audience grows: it should not grow with it)"
    )
    edge_ms = [ms for r in held for ms in r["per_viewer_ms"].values()]
    print(
        f"CPU per viewer             edges {statistics.median(edge_ms) if edge_ms else float('nan'):.2f} ms/s"
        f"                 origin {b['cpu_per_viewer_ms']:.2f} ms/s   (median over held steps)"
    )
    print(f"sessions on the origin at the end of the cluster ramp: {pulls_on_origin} (one per edge: 2)")
    print(f"run took {time.time() - started:.0f} s; {machine.describe()}")
    if not a["sound"]:
        failed.append("a step of the cluster ramp at or below its largest N failed, or none held")
    if pulls_on_origin != 2:
        failed.append(f"the origin had {pulls_on_origin} sessions, not one per edge")
    for reason in failed:
        print(f"FAILED: {reason}")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", default="25,50,100,150", help="viewers per edge (and on the origin alone)")
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--viewer-procs", type=int, default=2, help="viewer processes (split over the edges)")
    parser.add_argument("--probes", type=int, default=5, help="warm single joins timed per process")
    parser.add_argument("--hop-seconds", type=float, default=5.0)
    parser.add_argument("--short", action="store_true", help="a quick run (tests/test_bench_cluster.py)")
    args = parser.parse_args()
    if args.short:
        args.steps, args.window, args.probes, args.hop_seconds = "5,10", 3.0, 2, 3.0
    return run(args)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "hops":
        asyncio.run(run_hops(sys.argv[3:], float(sys.argv[2])))
    else:
        sys.exit(main())
