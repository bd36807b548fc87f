"""Show room fan-out benchmark: K WebSocket clients in one show, M chat messages per second.

Runs real uvicorn server processes on loopback (one with the in-process bus; two sharing Redis) and
spreads the clients over several client processes. Each chat message carries its send time; every
receiving socket measures send-to-receive latency. Prints delivered messages/s and p50/p99 latency.

    /tmp/venv/bin/python bench/room.py                       # both modes, 2,000 sockets per server, 50 msg/s
                                   # (memory: SQLite, one process; redis: PostgreSQL, two processes)
    /tmp/venv/bin/python bench/room.py --mode memory --clients 500 --rate 20 --duration 10
    /tmp/venv/bin/python bench/room.py --mode memory --clients 10000 --netns   # as root: see --netns
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import machine  # noqa: E402
from bench.services import free_port  # noqa: E402
from bench.tally import connect_failure_kind, room_failures  # noqa: E402
from bench.wsclient import RawSocket, open_socket  # noqa: E402
from liveshow.ratelimit.service import UNLIMITED  # noqa: E402
from liveshow.settings import Settings  # noqa: E402

REDIS_URL = os.environ.get("LIVESHOW_BENCH_REDIS", "redis://127.0.0.1:6379/0")
PG_ADMIN = os.environ.get("LIVESHOW_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def create_pg_database() -> str:
    """A fresh PostgreSQL database for one run (left for inspection; names start with lsroom_)."""
    from sqlalchemy import create_engine, text

    name = f"lsroom_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def setup_db(url: str, senders: int) -> tuple[int, list[int]]:
    from liveshow.accounts.models import User
    from liveshow.db import Database, migrate
    from liveshow.shows.models import Show

    migrate(url)
    db = Database(url)
    with db.session() as session:
        # Password hashing is slow and irrelevant here: the hash is never checked.
        seller = User(username="bench-seller", password_hash="x")
        session.add(seller)
        session.commit()
        show = Show(seller_id=seller.id or 0, title="Bench", stream_key="bench", state="live")
        users = [User(username=f"bench-{i}", password_hash="x") for i in range(senders)]
        session.add(show)
        session.add_all(users)
        session.commit()
        ids = [u.id or 0 for u in users]
        show_id = show.id or 0
    db.close()
    return show_id, ids


def cookie(secret: str, user_id: int) -> str:
    from itsdangerous import TimestampSigner

    payload = base64.b64encode(json.dumps({"uid": user_id}).encode())
    return TimestampSigner(secret).sign(payload).decode()


def uvicorn_command(port: int, *options: str) -> list[str]:
    """The command line of one liveshow server process on loopback: the app factory under uvicorn,
    quiet, with no access log (a line per request would be counted as the server's work)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "liveshow.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        *options,
    ]


def start_server(
    env: dict[str, str], port: int, ws: str, deflate: bool, backlog: int
) -> subprocess.Popen[bytes]:
    options = ["--ws", ws, "--ws-per-message-deflate", str(deflate).lower(), "--backlog", str(backlog)]
    cmd = uvicorn_command(port, *options)
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def cpu_seconds(pid: int) -> float:
    """User+system CPU a process has used so far (Linux /proc)."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds a process has used so far: system time is mostly socket writes."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


# ------------------------------------------------------------------ client processes

# Only the benchmark's own messages carry "b:<send time>"; the raw payload is scanned instead of
# JSON-parsed so that the clients, which share the machine with the server, stay cheap. The event's
# "ts" (when the server published it) splits the latency into the way in and the fan-out.
STAMP = re.compile(rb'"ts":(\d+)[^}]*?"text":"b:(\d+\.\d+)"')


async def client_main(job: dict[str, Any], ready: Any, go: Any, times: Any) -> dict[str, Any]:
    """Connect this process's sockets (receivers paced at ``connect_interval``), say so on ``ready``,
    wait for ``go`` (the window in ``times``), send through the window, and count what came back and
    what failed: sockets that did not connect (by kind), sockets closed during the run, error frames
    answered to the senders (by code)."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    ingress: list[float] = []
    received = 0
    sent = 0  # by this process's writers: a loaded client may fall behind the nominal rate
    receivers: list[RawSocket] = []
    senders: list[RawSocket] = []
    failed: dict[str, int] = {}
    sender_errors: dict[str, int] = {}
    cpu_at: dict[str, float] = {}

    def on_text(payload: bytes) -> None:
        nonlocal received
        now = time.time()
        for match in STAMP.finditer(payload):
            received += 1
            latencies.append((now - float(match.group(2))) * 1000)
            ingress.append(int(match.group(1)) - float(match.group(2)) * 1000)

    def on_sender_text(payload: bytes) -> None:
        if b'"error"' in payload:  # a refused chat message (rate_limited, ...) is answered alone
            frame = json.loads(payload)
            if frame.get("type") == "error":
                code = str(frame.get("code"))
                sender_errors[code] = sender_errors.get(code, 0) + 1

    async def connect(url: str, headers: dict[str, str], handler: Any, into: list[RawSocket]) -> None:
        try:
            into.append(await open_socket(url + "?last_seq=", headers, handler))
        except (OSError, TimeoutError) as exc:
            kind = connect_failure_kind(exc)
            failed[kind] = failed.get(kind, 0) + 1

    async def receiver(i: int, url: str) -> None:
        await asyncio.sleep(i * job["connect_interval"])  # paced: no thundering herd of handshakes
        await connect(url, {}, on_text, receivers)

    async def sender(
        sock: RawSocket, interval: float, offset: float, start_at: float, stop_at: float
    ) -> None:
        nonlocal sent
        await asyncio.sleep(max(0.0, start_at - time.time()) + offset)
        next_at = time.monotonic()
        while time.time() < stop_at:
            sock.send_frame(1, json.dumps({"type": "chat.send", "text": f"b:{time.time():.6f}"}).encode())
            sent += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def mark(name: str) -> None:
        cpu_at[name] = time.process_time()

    connecting = [asyncio.create_task(receiver(i, url)) for i, url in enumerate(job["receivers"])]
    for url, cookie_value in job["senders"]:
        headers = {"Cookie": f"liveshow_session={cookie_value}"}
        connecting.append(asyncio.create_task(connect(url, headers, on_sender_text, senders)))
    await asyncio.gather(*connecting)
    ready.put(len(receivers) + len(senders))
    await loop.run_in_executor(None, go.wait)
    start_at, stop_at = times[0], times[1]
    loop.call_later(max(0.0, start_at - time.time()), mark, "start")
    loop.call_later(max(0.0, stop_at - time.time()), mark, "stop")
    interval = job["sender_interval"]
    tasks = [
        asyncio.create_task(sender(sock, interval, (i / max(1, len(senders))) * interval, start_at, stop_at))
        for i, sock in enumerate(senders)
    ]
    await asyncio.sleep(max(0.0, stop_at + 3 - time.time()))  # let the last batches arrive
    for task in tasks:
        task.cancel()
    sockets = receivers + senders
    closed = sum(1 for s in sockets if s.transport is None or s.transport.is_closing())
    for sock in sockets:
        if sock.transport is not None:
            sock.transport.close()
    return {
        "latencies": latencies,
        "ingress": ingress,
        "received": received,
        "sent": sent,
        "dropped": sum(1 for s in sockets if s.close_code == 1013),
        "closed": closed,
        "failed_connects": failed,
        "sender_errors": sender_errors,
        "connected": len(sockets),
        "cpu_s": time.process_time(),
        "cpu_window_s": cpu_at.get("stop", 0.0) - cpu_at.get("start", 0.0),
    }


def client_process(job: dict[str, Any], out: Any, ready: Any, go: Any, times: Any) -> None:
    import uvloop

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        out.put(runner.run(client_main(job, ready, go, times)))


# ------------------------------------------------------------------ one run


def run(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    sockets_per_server: int = args.clients
    rate: float = args.rate
    duration: float = args.duration
    procs: int = args.procs
    servers = 1 if mode == "memory" else 2
    tmp = Path(tempfile.mkdtemp(prefix="liveshow-bench-"))
    # As deployed: one process on the embedded SQLite; several processes share PostgreSQL (two processes
    # writing one SQLite file wait on its lock, up to 100 ms per busy-handler step).
    database = args.db if args.db != "auto" else ("sqlite" if mode == "memory" else "postgres")
    db_url = f"sqlite:///{tmp / 'bench.db'}" if database == "sqlite" else create_pg_database()
    # 5 messages per 10 s per user: spread the rate over enough writers to stay under the limit.
    n_senders = max(1, int(rate * 2.5))
    show_id, sender_ids = setup_db(db_url, n_senders)
    secret = secrets.token_urlsafe(24)
    env = {
        "LIVESHOW_DATA_DIR": str(tmp),
        "LIVESHOW_DATABASE_URL": db_url,
        "LIVESHOW_SECRET_KEY": secret,
        "LIVESHOW_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        "LIVESHOW_BUS_URL": "memory://" if mode == "memory" else REDIS_URL,
        "LIVESHOW_BUS_PREFIX": f"bench:{secrets.token_hex(4)}",
        **{f"LIVESHOW_{k.upper()}": v for k, v in UNLIMITED.items()},
    }
    ports = [free_port() for _ in range(servers)]
    server_procs = [start_server(env, port, args.ws, args.deflate, args.backlog) for port in ports]
    workers: list[Any] = []
    try:
        urls = [f"ws://127.0.0.1:{port}/ws/shows/{show_id}" for port in ports]
        total = sockets_per_server * servers
        receivers = [urls[i % servers] for i in range(total - n_senders)]
        senders = [(urls[i % servers], cookie(secret, uid)) for i, uid in enumerate(sender_ids)]
        ctx = mp.get_context("spawn")
        out: Any = ctx.Queue()
        ready: Any = ctx.Queue()
        go = ctx.Event()
        times = ctx.Array("d", 2)
        jobs = [
            {
                "receivers": receivers[p::procs],
                "senders": senders[p::procs],
                "sender_interval": n_senders / rate,
                "connect_interval": procs / args.connect_rate,
            }
            for p in range(procs)
        ]
        workers += [ctx.Process(target=client_process, args=(job, out, ready, go, times)) for job in jobs]
        ramp_started = time.time()
        for worker in workers:
            worker.start()
        # The chat starts once every socket has connected or failed to: a socket still joining would
        # miss messages through no fault of the server's fan-out.
        for _ in workers:
            ready.get(timeout=total / args.connect_rate + 120)
        start_at = time.time() + 1.0
        stop_at = start_at + duration
        times[0], times[1] = start_at, stop_at
        go.set()
        ramp = start_at - ramp_started
        profilers = []
        if args.profile:
            # py-spy samples the server(s) while the chat load runs; folded stacks, one file per server.
            delay = max(0.0, start_at - time.time())
            for proc, port in zip(server_procs, ports, strict=True):
                out_file = Path(args.profile) / f"room-{mode}-{port}.folded"
                spy = (
                    f"sleep {delay:.1f}; exec {Path(sys.executable).parent / 'py-spy'} record "
                    f"--pid {proc.pid}"
                    f" --duration {int(duration)} --format raw --output {out_file} --nonblocking"
                )
                profilers.append(subprocess.Popen(["sh", "-c", spy], stdout=subprocess.DEVNULL))
        # CPU of each side while the chat load runs (the ramp of handshakes is left out).
        time.sleep(max(0.0, start_at - time.time()))
        server_cpu_start = [cpu_split(proc.pid) for proc in server_procs]
        time.sleep(max(0.0, stop_at - time.time()))
        server_split = [
            (user - before[0], system - before[1])
            for (user, system), before in zip(
                (cpu_split(proc.pid) for proc in server_procs), server_cpu_start, strict=True
            )
        ]
        server_cpu_window = [user + system for user, system in server_split]
        results = [out.get(timeout=ramp + duration + 60) for _ in workers]
        for worker in workers:
            worker.join(timeout=10)
        for profiler in profilers:
            profiler.wait(timeout=30)
        server_cpu = [cpu_seconds(proc.pid) for proc in server_procs]
    except BaseException:
        # a client process that died (its sockets never reported) must not leave servers behind
        for child in [*workers, *server_procs]:
            if child.pid is not None:  # a client process not yet started has none
                child.kill()
        raise
    for proc in server_procs:
        proc.send_signal(signal.SIGINT)
    for proc in server_procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    latencies = sorted(x for r in results for x in r["latencies"])
    ingress = sorted(x for r in results for x in r["ingress"])
    received = sum(r["received"] for r in results)
    # Every receiver should get every message actually sent (the writers may fall behind the rate).
    sent_expected = sum(r["sent"] for r in results)
    failed_connects: dict[str, int] = {}
    sender_errors: dict[str, int] = {}
    for r in results:
        for kind, n in r["failed_connects"].items():
            failed_connects[kind] = failed_connects.get(kind, 0) + n
        for code, n in r["sender_errors"].items():
            sender_errors[code] = sender_errors.get(code, 0) + n
    missing, failures = room_failures(
        failed_connects,
        sum(r["closed"] for r in results),
        sent_expected,
        total - n_senders,
        received,
        sender_errors,
    )

    def pct(q: float, values: list[float] = latencies) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    return {
        "mode": mode,
        "servers": servers,
        "sockets": total,
        "connected": sum(r["connected"] for r in results),
        "failed_connects": failed_connects,
        "closed": sum(r["closed"] for r in results),
        "sender_errors": sender_errors,
        "sent": sent_expected,
        "received": received,
        "missing": missing,
        "failures": failures,
        "rate": rate,
        "duration": duration,
        "delivered_per_s": received / duration,
        "expected_per_s": sent_expected * (total - n_senders) / duration,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "ingress_p50_ms": pct(0.50, ingress),
        "ingress_p99_ms": pct(0.99, ingress),
        "dropped": sum(r["dropped"] for r in results),
        "server_cpu_s": server_cpu,
        "client_cpu_s": sum(r["cpu_s"] for r in results),
        "server_cpu_window_s": server_cpu_window,
        "server_sys_window_s": [system for _, system in server_split],
        "client_cpu_window_s": [r["cpu_window_s"] for r in results],
        "wall_s": ramp + duration,
    }


IN_NETNS = "LIVESHOW_BENCH_IN_NETNS"


def rerun_in_netns(args: argparse.Namespace) -> int:
    """This benchmark again, in a fresh network namespace (its own loopback and somaxconn; it goes away
    with the process). Redis and PostgreSQL are not reachable from there, hence memory mode only."""
    if args.mode != "memory":
        print("--netns runs the memory mode only (Redis and PostgreSQL stay outside the namespace)")
        return 2
    setup = f'ip link set lo up && sysctl -qw net.core.somaxconn={args.backlog} && exec "$0" "$@"'
    argv = [a for a in sys.argv[1:] if a != "--netns"]
    me = str(Path(__file__).resolve())
    command = ["unshare", "--net", "--", "sh", "-c", setup, sys.executable, me, *argv]
    return subprocess.run(command, env={**os.environ, IN_NETNS: "1"}, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["memory", "redis", "both"], default="both")
    parser.add_argument("--clients", type=int, default=2000, help="sockets per server process")
    parser.add_argument("--rate", type=float, default=50.0, help="chat messages per second in the show")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of sending")
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument(
        "--db",
        choices=["auto", "sqlite", "postgres"],
        default="auto",
        help="the servers' database (auto: SQLite for one process, PostgreSQL for two)",
    )
    parser.add_argument(
        "--ws", default="websockets-sansio", choices=["websockets", "websockets-sansio", "wsproto"]
    )
    parser.add_argument("--deflate", action="store_true", help="let the server offer permessage-deflate")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the server(s) into DIR/*.folded")
    parser.add_argument(
        "--backlog",
        type=int,
        default=Settings.listen_backlog,
        help="the servers' listen backlog (default: liveshow serve's, the listen_backlog setting)",
    )
    parser.add_argument(
        "--connect-rate", type=float, default=500, help="socket handshakes per second, all clients together"
    )
    parser.add_argument(
        "--netns",
        action="store_true",
        help="run in a network namespace of its own (root; memory mode only) whose net.core.somaxconn is "
        "raised to the backlog, as a host serving thousands of sockets per process sets it, without "
        "changing this machine's setting",
    )
    args = parser.parse_args()
    if args.netns and os.environ.get(IN_NETNS) is None:
        return rerun_in_netns(args)
    modes = ["memory", "redis"] if args.mode == "both" else [args.mode]
    print(machine.describe(), flush=True)
    somaxconn = Path("/proc/sys/net/core/somaxconn").read_text().strip()
    print(
        f"machine: {os.cpu_count()} cores shared by the server(s), {args.procs} client processes, Redis and "
        f"PostgreSQL; listen backlog {args.backlog} (net.core.somaxconn {somaxconn}); "
        f"handshakes paced at {args.connect_rate:.0f}/s"
    )
    failed = False
    print(
        f"{'bus':<7}{'servers':>8}{'sockets':>9}{'msg/s':>7}{'delivered/s':>13}{'expected/s':>12}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'dropped':>9}"
    )
    for mode in modes:
        r = run(mode, args)
        print(
            f"{r['mode']:<7}{r['servers']:>8}{r['sockets']:>9}{r['rate']:>7.0f}{r['delivered_per_s']:>13.0f}"
            f"{r['expected_per_s']:>12.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}"
            f"{r['dropped']:>9}",
            flush=True,
        )
        cpu = ", ".join(f"{c:.1f}" for c in r["server_cpu_s"])
        print(
            f"        CPU seconds over {r['wall_s']:.0f} s: server(s) {cpu}; clients {r['client_cpu_s']:.1f}"
        )
        print(
            f"        send to publish (the message's way in: socket, checks, database, bus): "
            f"p50 {r['ingress_p50_ms']:.1f} ms, p99 {r['ingress_p99_ms']:.1f} ms"
        )
        window = r["duration"]
        server_share = ", ".join(
            f"{c / window:.0%} ({s / window:.0%} in the kernel)"
            for c, s in zip(r["server_cpu_window_s"], r["server_sys_window_s"], strict=True)
        )
        client_share = ", ".join(f"{c / window:.0%}" for c in r["client_cpu_window_s"])
        print(
            f"        CPU while sending (share of one core): server(s) {server_share}; "
            f"client processes {client_share}; load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"        sockets connected {r['connected']} of {r['sockets']} "
            f"in {r['wall_s'] - r['duration']:.0f} s; "
            f"failed to connect {r['failed_connects'] or 0}; closed during the run {r['closed']}; "
            f"chat messages sent {r['sent']}, refused {r['sender_errors'] or 0}; "
            f"deliveries {r['received']} of {r['received'] + r['missing']} ({r['missing']} missing)"
        )
        if r["failures"]:
            failed = True
            print(f"        FAILED: {'; '.join(r['failures'])}", flush=True)
        else:
            print("        held: every socket connected and got every message", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
