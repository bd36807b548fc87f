"""Benchmark: bids on one show through two server processes (Redis bus + PostgreSQL), at rising rates.

Default transport: the room WebSocket. 1,000 signed-in sockets over several client processes (the lean
clients of bench/wsclient.py), spread over both servers; bids are room frames sent over them, open
loop (each bid has a scheduled send time and its latency counts from it), and every socket receives the
show's events. ``--transport http`` drives the same writer through its HTTP twin (POST
/api/shows/{id}/auction, the same JSON as a room frame) with a listener process on the show's bus topic
playing "everyone". Per step it prints the decisions/s achieved and bid-to-ack and bid-to-everyone
p50/p99, and the servers' own histograms for the step (a bid's answer time inside the servers, the
leader's batch size and stages: decide, persist, announce); then the writer's own capacity in this
process (one command per transaction against batches) and the ratio; at the end it checks that the
winner and every order match a replay of the accepted bids through the pure rules.

    /tmp/venv/bin/python bench/bids.py                      # ramp 250,500,1000,2000,4000 /s, 4 s each
    /tmp/venv/bin/python bench/bids.py --transport http
    /tmp/venv/bin/python bench/bids.py --steps 500,1000 --step-seconds 3
    BENCH_SERVER_STDERR=1 /tmp/venv/bin/python bench/bids.py   # the servers' logs on stderr
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import machine  # noqa: E402
from bench.bids_clients import Result, client_proc, listener_proc, ws_client_proc  # noqa: E402
from bench.server_metrics import StepScraper, writer_report  # noqa: E402
from bench.services import free_port  # noqa: E402
from bench.tally import ACCEPTED, Sighting, bid_step, pct, ramp_verdict, seen_by_everyone  # noqa: E402
from liveshow.ratelimit.service import UNLIMITED  # noqa: E402

PG_ADMIN = os.environ.get("LIVESHOW_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("LIVESHOW_TEST_REDIS", "redis://127.0.0.1:6379/0")


def report(
    steps: list[float], step_s: float, results: list[Result], parts: list[tuple[int, dict[int, Sighting]]]
) -> bool:
    """One line per offered rate, then why each step that did not hold failed; True when the ramp is
    sound (a step held and every step below the best one held too).

    Decided: accepted or refused by the rules; any other answer (writer_unavailable, a timeout, a
    closed socket) is an error of its kind and feeds neither decisions/s nor the ack percentiles. "All"
    is the time until every socket had an accepted bid; the bids some socket never got are counted
    beside it ("unseen"), not left out silently. A step's span runs until its last answer."""
    accepted_dseqs = [r[4] for r in results if r[3] == ACCEPTED]
    everyone, unseen_total, missing_total = seen_by_everyone(accepted_dseqs, parts)
    total = sum(sockets for sockets, _seen in parts)
    unseen = {d for d in accepted_dseqs if d not in everyone}
    missing = {d: total - sum(seen[d].sockets for _n, seen in parts if d in seen) for d in unseen}
    print(
        f"{'offered/s':>9} {'decided':>8} {'decisions/s':>11} {'accepted':>8} {'errors':>6} "
        f"{'ack p50':>8} {'ack p99':>8} {'all p50':>8} {'all p99':>8} {'unseen':>6}  (ms)"
    )
    held: list[bool] = []
    verdicts: list[str] = []
    for step, rate in enumerate(steps):
        mine = [r for r in results if r[0] == step]
        if not mine:
            print(f"{rate:>9.0f}  (not run: the previous step was saturated)")
            continue
        t = bid_step(mine, step_s, everyone, unseen, missing)
        print(
            f"{rate:>9.0f} {t.decided:>8} {t.per_s:>11.0f} {t.accepted:>8} {sum(t.errors.values()):>6} "
            f"{pct(t.ack_ms, 50):>8.1f} {pct(t.ack_ms, 99):>8.1f} "
            f"{pct(t.everyone_ms, 50):>8.1f} {pct(t.everyone_ms, 99):>8.1f} {t.unseen:>6}"
        )
        failures = t.failures()
        held.append(not failures)
        verdicts.append(f"{rate:>9.0f}/s: " + ("held" if not failures else "FAILED: " + "; ".join(failures)))
    print("\n".join(verdicts))
    warm = [r for r in results if r[0] == -1]
    if warm and bid_step(warm, step_s, everyone).errors:
        print(f"warm-up (not reported above): {dict(bid_step(warm, step_s, everyone).errors)}")
    print(
        f"accepted bids in all: {len(accepted_dseqs)}, seen by every one of {total} receivers: "
        f"{len(everyone)}, not: {unseen_total} ({missing_total} deliveries missing)"
    )
    best, sound = ramp_verdict(held)
    if best is None:
        print("end to end: no step held")
    else:
        t = bid_step([r for r in results if r[0] == best], step_s, everyone, unseen, missing)
        print(
            f"end to end: at most {t.per_s:.0f} decisions/s "
            f"(offered {steps[best]:.0f}/s, the last step that held)"
        )
    if best is not None and not sound:
        print("RAMP UNSOUND: a step below the best one did not hold")
    return sound


def session_cookie(user_id: int, secret: str) -> str:
    """A signed-in session, as Starlette's SessionMiddleware writes it (the room socket's sign-in)."""
    import base64
    import json

    from itsdangerous import TimestampSigner

    data = base64.b64encode(json.dumps({"uid": user_id}).encode())
    return TimestampSigner(secret).sign(data).decode()


def writer_capacity(
    db_url: str, prefix: str, show_id: int, seller_id: int, listing_id: int, users: list[int]
) -> None:
    """The writer alone (no HTTP, no command stream): one command per transaction vs batches."""
    from liveshow.auction.commands import Command
    from liveshow.auction.writer import ShowWriter
    from liveshow.bus.redis import RedisBus
    from liveshow.db import Database
    from liveshow.showlog import ShowLog

    async def run() -> None:
        db = Database(db_url)
        bus = RedisBus(REDIS_URL, prefix=prefix)
        await bus.start()
        showlog = ShowLog(bus, db)
        writer = ShowWriter(db, showlog, show_id)
        writer.acquire()
        opened = await writer.run_batch(
            [
                Command(
                    "lot.open",
                    show_id,
                    seller_id,
                    None,
                    {
                        "listing_id": listing_id,
                        "mode": "auction",
                        "start_cents": 1000,
                        "duration_s": 600,
                        "sudden_death": True,
                    },
                )
            ]
        )
        assert "ok" in opened[0][1], opened
        price = 1000
        figures = {}
        for label, batch, total in (("one command per transaction", 1, 300), ("batches of 200", 200, 4000)):
            t0 = time.perf_counter()
            done = 0
            while done < total:
                cmds = []
                for i in range(batch):
                    price += (
                        50 if i % 4 == 0 else 0
                    )  # a quarter of them raise the price, the rest are too low
                    uid = users[(done + i) % len(users)]
                    cmds.append(
                        Command(
                            "bid",
                            show_id,
                            uid,
                            f"cap-{secrets.token_hex(6)}",
                            {"max_cents": price, "lot_no": None},
                        )
                    )
                await writer.run_batch(cmds)
                done += batch
            figures[label] = total / (time.perf_counter() - t0)
            print(f"writer alone, {label}: {figures[label]:.0f} decisions/s")
        ratio = figures["batches of 200"] / figures["one command per transaction"]
        print(f"writer alone: batching x{ratio:.1f}")
        await writer.close()
        await showlog.stop()
        await bus.close()
        db.close()

    asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", default="250,500,1000,2000,4000", help="offered commands/s, in order")
    parser.add_argument("--step-seconds", type=float, default=4)
    parser.add_argument("--clients", type=int, default=3, help="client processes")
    parser.add_argument("--connections", type=int, default=150, help="keep-alive connections per client")
    parser.add_argument("--bidders", type=int, default=200)
    parser.add_argument("--transport", choices=("ws", "http"), default="ws")
    parser.add_argument("--sockets", type=int, default=1000, help="room WebSockets in all (ws transport)")
    parser.add_argument(
        "--bid-limit",
        default="off",
        help="the servers' limit_bid_account (default off, as one address's load generator needs): a rule "
        "no bidder reaches, e.g. 1000000/10, counts every bid as production does without refusing any",
    )
    args = parser.parse_args()
    steps = [float(x) for x in args.steps.split(",")]
    print(machine.describe(), flush=True)

    from sqlalchemy import create_engine, text
    from sqlmodel import col, select

    from liveshow.accounts.models import User
    from liveshow.accounts.service import issue_token
    from liveshow.auction import rules
    from liveshow.auction.models import AuctionBid, AuctionLot
    from liveshow.closet.models import Listing
    from liveshow.db import Database, migrate
    from liveshow.orders.models import Order
    from liveshow.shows.models import Show

    name = f"liveshow_bench_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    prefix = f"lsbench:{secrets.token_hex(4)}"
    servers: list[subprocess.Popen[bytes]] = []
    try:
        migrate(db_url)
        db = Database(db_url)
        with db.session() as s:
            seller = User(username="bench-seller", password_hash="!")
            s.add(seller)
            s.commit()
            s.refresh(seller)
            seller_token = issue_token(s, seller)
            show = Show(
                seller_id=seller.id or 0, title="bench", stream_key=secrets.token_hex(8), state="live"
            )
            # a second show and listing for the writer-alone measurement
            other = Show(
                seller_id=seller.id or 0, title="writer", stream_key=secrets.token_hex(8), state="live"
            )
            listing = Listing(seller_id=seller.id or 0, title="Bench jacket", price_cents=1000, quantity=1)
            spare = Listing(seller_id=seller.id or 0, title="Spare", price_cents=1000, quantity=1)
            s.add_all([show, other, listing, spare])
            s.commit()
            for row in (show, other, listing, spare):
                s.refresh(row)
            users = [User(username=f"bidder{i}", password_hash="!") for i in range(args.bidders)]
            s.add_all(users)
            s.commit()
            tokens = []
            for user in users:
                s.refresh(user)
                tokens.append((user.id or 0, issue_token(s, user)))
        env = dict(
            os.environ,
            LIVESHOW_BUS_URL=REDIS_URL,
            LIVESHOW_DATABASE_URL=db_url,
            LIVESHOW_BUS_PREFIX=prefix,
            LIVESHOW_SECRET_KEY="bench",
            # The default level, as a server in production logs: a log line per bid would be counted.
            LIVESHOW_LOG_LEVEL="INFO",
            **{
                f"LIVESHOW_{k.upper()}": v
                for k, v in {**UNLIMITED, "limit_bid_account": args.bid_limit}.items()
            },
        )
        addrs = []
        for n in range(2):
            port = free_port()
            env["LIVESHOW_DATA_DIR"] = f"/tmp/{prefix.replace(':', '-')}-{n}"
            servers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "liveshow.cli", "serve", "--port", str(port)],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=None if os.environ.get("BENCH_SERVER_STDERR") else subprocess.DEVNULL,
                )
            )
            addrs.append(("127.0.0.1", port))
        import httpx

        for host, port in addrs:
            deadline = time.time() + 30
            while True:
                try:
                    if httpx.get(f"http://{host}:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.time() > deadline:
                    raise RuntimeError("server did not start")
                time.sleep(0.1)
        path = f"/api/shows/{show.id}/auction"
        duration = int(
            len(steps) * args.step_seconds + 12 + (args.sockets / 150 if args.transport == "ws" else 0)
        )
        r = httpx.post(
            f"http://{addrs[0][0]}:{addrs[0][1]}{path}",
            headers={"Authorization": f"Bearer {seller_token}"},
            timeout=30,
            json={
                "type": "lot.open",
                "listing_id": listing.id,
                "mode": "auction",
                "start_cents": 1000,
                "duration_s": duration,
                "sudden_death": True,
            },
        )
        assert r.status_code == 200, r.text
        ends_at_ms = r.json()["lot"]["ends_at_ms"]

        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        start_at = time.time() + 2.0 + (args.sockets / 150 if args.transport == "ws" else 0)
        share = [rate / args.clients for rate in steps]
        scraper = StepScraper(addrs, [start_at + i * args.step_seconds for i in range(len(steps) + 1)])
        scraper.start()
        results: list[Result] = []
        wait_s = len(steps) * args.step_seconds * 4 + 120
        if args.transport == "ws":
            cookies = [(uid, session_cookie(uid, "bench")) for uid, _t in tokens]
            clients = [
                ctx.Process(
                    target=ws_client_proc,
                    args=(
                        addrs,
                        show.id,
                        cookies[i :: args.clients],
                        args.sockets // args.clients,
                        share,
                        args.step_seconds,
                        start_at,
                        out,
                    ),
                )
                for i in range(args.clients)
            ]
            for c in clients:
                c.start()
            replies = [out.get(timeout=wait_s) for _ in clients]
            for reply in replies:
                results.extend(reply["results"])
            # seen by everyone: by every connected socket of every client process
            parts = [(reply["sockets"], reply["seen"]) for reply in replies]
            failed_connects: dict[str, int] = {}
            for reply in replies:
                for kind, n in reply["failed_connects"].items():
                    failed_connects[kind] = failed_connects.get(kind, 0) + n
            closed = sum(reply["closed"] for reply in replies)
            for c in clients:
                c.join(10)
            transport = f"{args.clients} processes x {args.sockets // args.clients} room WebSockets"
            print(
                f"sockets: {sum(p[0] for p in parts)} of {args.sockets // args.clients * args.clients} "
                f"connected; failed to connect: {failed_connects or 0}; closed before the end: {closed}"
            )
            sockets_ok = not failed_connects and not closed
        else:
            events_out = ctx.Queue()
            ready, stop = ctx.Event(), ctx.Event()
            listener = ctx.Process(
                target=listener_proc, args=(REDIS_URL, prefix, show.id, events_out, ready, stop)
            )
            listener.start()
            ready.wait(20)
            clients = [
                ctx.Process(
                    target=client_proc,
                    args=(
                        addrs,
                        path,
                        tokens[i :: args.clients],
                        share,
                        args.step_seconds,
                        args.connections,
                        start_at,
                        out,
                    ),
                )
                for i in range(args.clients)
            ]
            for c in clients:
                c.start()
            for _ in clients:
                results.extend(out.get(timeout=wait_s))
            stop.set()
            parts = [(1, events_out.get(timeout=30))]
            sockets_ok = True
            for c in [*clients, listener]:
                c.join(10)
            transport = f"{args.clients} processes x {args.connections} keep-alive HTTP connections"

        print(
            f"servers: 2 processes, Redis bus, PostgreSQL; clients: {transport}, open loop, "
            f"{args.step_seconds:.0f} s per step; bid limit per account: {args.bid_limit}; "
            f"{os.cpu_count()} cores shared by all of it"
        )
        sound = report(steps, args.step_seconds, results, parts) and sockets_ok
        scraper.join(timeout=10)
        writer_report(steps, scraper.snapshots)
        writer_capacity(db_url, prefix, other.id or 0, seller.id or 0, spare.id or 0, [t[0] for t in tokens])

        # wait for the close, then replay the accepted bids through the pure rules
        while time.time() * 1000 < ends_at_ms + 3000:
            time.sleep(0.5)
        accepted = [r for r in results if r[3] == ACCEPTED]
        with db.session() as s:
            lot_row = s.exec(select(AuctionLot).where(AuctionLot.show_id == show.id)).one()
            bids = s.exec(
                select(AuctionBid).where(AuctionBid.lot_id == lot_row.id).order_by(col(AuctionBid.seq))
            ).all()
            orders = s.exec(select(Order).where(Order.listing_id == listing.id)).all()
        book = rules.open_auction(
            rules.Book(show.id or 0, seller.id or 0), listing.id or 0, 1000, duration * 1000, True, 0
        ).book
        for n, b in enumerate(bids):
            book = rules.bid(book, b.bidder_id, b.max_cents, n + 1).book
        expected = rules.standing(book.lot)  # type: ignore[arg-type]
        ok = (
            len(bids) == len(accepted)
            and sorted(b.seq for b in bids) == sorted(r[4] for r in accepted)
            and lot_row.state == "closed"
            and len(orders) == 1
            and (orders[0].buyer_id, orders[0].price_cents) == (expected.leader_id, expected.price_cents)
        )
        print(
            f"replay check: {len(bids)} accepted bids persisted ({len(accepted)} acknowledged), winner "
            f"{expected.leader_id} at {expected.price_cents} cents, orders "
            f"{[(o.buyer_id, o.price_cents) for o in orders]}: {'OK' if ok else 'MISMATCH'}"
        )
        db.close()
        return 0 if ok and sound else 1
    finally:
        for p in servers:
            p.send_signal(signal.SIGTERM)
        for p in servers:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    sys.exit(main())
