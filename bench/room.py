"""Show room fan-out benchmark: K WebSocket clients in one show, M chat messages per second.

Runs real uvicorn server processes on loopback (one with the in-process bus; two sharing Redis) and
spreads the clients over several client processes. Each chat message carries its send time; every
receiving socket measures send-to-receive latency. Prints delivered messages/s and p50/p99 latency.

    /tmp/venv/bin/python bench/room.py                       # both modes, 2,000 sockets per server, 50 msg/s
    /tmp/venv/bin/python bench/room.py --mode memory --clients 500 --rate 20 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
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

REDIS_URL = os.environ.get("LIVESHOW_BENCH_REDIS", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    cmd = [
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
        "--ws",
        "websockets",
        "--no-access-log",
    ]
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
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ client processes


async def client_main(job: dict[str, Any]) -> dict[str, Any]:
    import websockets

    latencies: list[float] = []
    received = 0
    dropped = 0
    connected = 0
    start_at: float = job["start_at"]
    stop_at: float = job["stop_at"]

    async def receiver(url: str) -> None:
        nonlocal received, dropped, connected
        try:
            async with websockets.connect(
                url + "?last_seq=", max_size=2**24, open_timeout=60, compression=None
            ) as ws:
                connected += 1
                async for raw in ws:
                    now = time.time()
                    message = json.loads(raw)
                    frames = message["events"] if message.get("type") == "batch" else [message]
                    for frame in frames:
                        if frame.get("type") == "chat.message" and frame["text"].startswith("b:"):
                            received += 1
                            latencies.append((now - float(frame["text"][2:])) * 1000)
                    if now > stop_at + 3:
                        return
        except websockets.ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == 1013:
                dropped += 1

    async def sender(url: str, cookie_value: str, interval: float, offset: float) -> None:
        headers = {"Cookie": f"liveshow_session={cookie_value}"}
        async with websockets.connect(
            url + "?last_seq=", additional_headers=headers, open_timeout=60, compression=None
        ) as ws:

            async def drain() -> None:
                async for _ in ws:
                    pass

            drainer = asyncio.create_task(drain())
            await asyncio.sleep(max(0.0, start_at - time.time()) + offset)
            next_at = time.monotonic()
            while time.time() < stop_at:
                await ws.send(json.dumps({"type": "chat.send", "text": f"b:{time.time():.6f}"}))
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            drainer.cancel()

    async def staggered(i: int, url: str) -> None:
        await asyncio.sleep(i * 0.005)  # spread the handshakes instead of a thundering herd
        await receiver(url)

    tasks = [asyncio.create_task(staggered(i, url)) for i, url in enumerate(job["receivers"])]
    for i, (url, cookie_value) in enumerate(job["senders"]):
        offset = (i / max(1, len(job["senders"]))) * job["sender_interval"]
        tasks.append(asyncio.create_task(sender(url, cookie_value, job["sender_interval"], offset)))
    done, pending = await asyncio.wait(tasks, timeout=max(5.0, stop_at - time.time() + 8))
    for task in pending:
        task.cancel()
    errors = [t.exception() for t in done if not t.cancelled() and t.exception() is not None]
    if errors:
        print(f"client process: {len(errors)} sockets failed, e.g. {errors[0]!r}", file=sys.stderr)
    return {
        "latencies": latencies,
        "received": received,
        "dropped": dropped,
        "connected": connected,
        "cpu_s": time.process_time(),
    }


def client_process(job: dict[str, Any], out: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out.put(asyncio.run(client_main(job)))


# ------------------------------------------------------------------ one run


def run(mode: str, sockets_per_server: int, rate: float, duration: float, procs: int) -> dict[str, Any]:
    servers = 1 if mode == "memory" else 2
    tmp = Path(tempfile.mkdtemp(prefix="liveshow-bench-"))
    db_url = f"sqlite:///{tmp / 'bench.db'}"
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
    }
    ports = [free_port() for _ in range(servers)]
    server_procs = [start_server(env, port) for port in ports]
    urls = [f"ws://127.0.0.1:{port}/ws/shows/{show_id}" for port in ports]
    total = sockets_per_server * servers
    receivers = [urls[i % servers] for i in range(total - n_senders)]
    senders = [(urls[i % servers], cookie(secret, uid)) for i, uid in enumerate(sender_ids)]
    ramp = max(10.0, total / 150)
    start_at = time.time() + ramp
    stop_at = start_at + duration
    out: Any = mp.get_context("spawn").Queue()
    jobs = [
        {
            "receivers": receivers[p::procs],
            "senders": senders[p::procs],
            "sender_interval": n_senders / rate,
            "start_at": start_at,
            "stop_at": stop_at,
        }
        for p in range(procs)
    ]
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=client_process, args=(job, out)) for job in jobs]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=ramp + duration + 60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
    server_cpu = [cpu_seconds(proc.pid) for proc in server_procs]
    for proc in server_procs:
        proc.send_signal(signal.SIGINT)
    for proc in server_procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    latencies = sorted(x for r in results for x in r["latencies"])
    received = sum(r["received"] for r in results)
    sent_expected = rate * duration

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {
        "mode": mode,
        "servers": servers,
        "sockets": total,
        "connected": sum(r["connected"] for r in results) + n_senders,
        "rate": rate,
        "duration": duration,
        "delivered_per_s": received / duration,
        "expected_per_s": sent_expected * (total - n_senders) / duration,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "dropped": sum(r["dropped"] for r in results),
        "server_cpu_s": server_cpu,
        "client_cpu_s": sum(r["cpu_s"] for r in results),
        "wall_s": ramp + duration,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["memory", "redis", "both"], default="both")
    parser.add_argument("--clients", type=int, default=2000, help="sockets per server process")
    parser.add_argument("--rate", type=float, default=50.0, help="chat messages per second in the show")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of sending")
    parser.add_argument("--procs", type=int, default=4, help="client processes")
    args = parser.parse_args()
    modes = ["memory", "redis"] if args.mode == "both" else [args.mode]
    print(
        f"{'bus':<7}{'servers':>8}{'sockets':>9}{'msg/s':>7}{'delivered/s':>13}{'expected/s':>12}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'dropped':>9}"
    )
    for mode in modes:
        r = run(mode, args.clients, args.rate, args.duration, args.procs)
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


if __name__ == "__main__":
    main()
