"""Benchmark: bids on one show through two server processes (Redis bus + PostgreSQL).

Until the room WebSocket lands, bidders drive the writer through its public HTTP twin
(POST /api/shows/{id}/auction, the same JSON as a room frame) from several client processes; a listener
process subscribed to the show's bus topic plays "everyone". Prints decisions/s, bid-to-ack and
bid-to-everyone p50/p99, then checks that the winner and the order match a replay of the accepted bids
through the pure rules.

    /tmp/venv/bin/python bench/bids.py --seconds 10 --clients 4 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("LIVESHOW_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("LIVESHOW_TEST_REDIS", "redis://127.0.0.1:6379/0")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def client_proc(
    urls: list[str],
    path: str,
    tokens: list[tuple[int, str]],
    seconds: float,
    concurrency: int,
    start_at: float,
    out: Any,
) -> None:
    import httpx

    async def run() -> list[tuple[float, float, bool, int]]:
        results: list[tuple[float, float, bool, int]] = []
        price = {"cents": 1000}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            await asyncio.sleep(max(0.0, start_at - time.time()))
            end = time.time() + seconds

            async def bidder(n: int) -> None:
                uid, token = tokens[n % len(tokens)]
                i = 0
                while time.time() < end:
                    i += 1
                    # a custom maximum a little above the last price seen: mostly accepted, some too low
                    amount = price["cents"] + random.choice((100, 200, 300, 500, 1000))
                    sent = time.time()
                    r = await client.post(
                        urls[(n + i) % len(urls)] + path,
                        json={
                            "type": "bid",
                            "key": f"b{uid}-{n}-{i}-{secrets.token_hex(3)}",
                            "max_cents": amount,
                        },
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    done = time.time()
                    body = r.json()
                    ok = r.status_code == 200
                    if ok:
                        price["cents"] = max(price["cents"], body["price_cents"])
                    elif body.get("min_cents"):
                        price["cents"] = max(price["cents"], int(body["min_cents"]) - 100)
                    results.append((sent, done - sent, ok, int(body.get("dseq", 0)) if ok else 0))

            await asyncio.gather(*[bidder(n) for n in range(concurrency)])
        return results

    out.put(asyncio.run(run()))


def listener_proc(prefix: str, show_id: int, stop_at: float, out: Any, ready: Any) -> None:
    from liveshow.bus.redis import RedisBus

    async def run() -> dict[int, float]:
        bus = RedisBus(REDIS_URL, prefix=prefix)
        await bus.start()
        sub = bus.subscribe(f"show:{show_id}")
        seen: dict[int, float] = {}
        await asyncio.sleep(0.3)
        ready.set()
        while time.time() < stop_at:
            try:
                event = await sub.get(timeout=0.5)
            except TimeoutError:
                continue
            if event.type == "bid.accepted":
                seen[int(event.data["dseq"])] = time.time()
        sub.close()
        await bus.close()
        return seen

    out.put(asyncio.run(run()))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=32, help="bidders per client process")
    parser.add_argument("--bidders", type=int, default=200)
    args = parser.parse_args()

    from sqlalchemy import create_engine, text
    from sqlmodel import select

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
            show = Show(seller_id=seller.id, title="bench", stream_key=secrets.token_hex(8), state="live")
            listing = Listing(seller_id=seller.id or 0, title="Bench jacket", price_cents=1000, quantity=1)
            s.add(show)
            s.add(listing)
            s.commit()
            s.refresh(show)
            s.refresh(listing)
            tokens = []
            for i in range(args.bidders):
                user = User(username=f"bidder{i}", password_hash="!")
                s.add(user)
                s.commit()
                s.refresh(user)
                tokens.append((user.id or 0, issue_token(s, user)))
        env = dict(
            os.environ,
            LIVESHOW_BUS_URL=REDIS_URL,
            LIVESHOW_DATABASE_URL=db_url,
            LIVESHOW_BUS_PREFIX=prefix,
            LIVESHOW_SECRET_KEY="bench",
            LIVESHOW_LOG_LEVEL="WARNING",
        )
        urls = []
        for n in range(2):
            port = free_port()
            env["LIVESHOW_DATA_DIR"] = f"/tmp/{prefix.replace(':', '-')}-{n}"
            servers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "liveshow.cli", "serve", "--port", str(port)],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        import httpx

        for url in urls:
            deadline = time.time() + 30
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.time() > deadline:
                    raise RuntimeError("server did not start")
                time.sleep(0.1)
        path = f"/api/shows/{show.id}/auction"
        duration = int(args.seconds) + 6
        r = httpx.post(
            urls[0] + path,
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
        events_out = ctx.Queue()
        ready = ctx.Event()
        start_at = time.time() + 2.0
        listener = ctx.Process(
            target=listener_proc, args=(prefix, show.id, start_at + args.seconds + 3, events_out, ready)
        )
        listener.start()
        ready.wait(20)
        per = [tokens[i :: args.clients] for i in range(args.clients)]
        clients = [
            ctx.Process(
                target=client_proc, args=(urls, path, per[i], args.seconds, args.concurrency, start_at, out)
            )
            for i in range(args.clients)
        ]
        for c in clients:
            c.start()
        results: list[tuple[float, float, bool, int]] = []
        for _ in clients:
            results.extend(out.get(timeout=args.seconds + 120))
        seen: dict[int, float] = events_out.get(timeout=args.seconds + 30)
        for c in [*clients, listener]:
            c.join(10)

        acks = [lat * 1000 for _s, lat, _ok, _d in results]
        accepted = [(sent, d) for sent, _lat, ok, d in results if ok]
        fanout = [(seen[d] - sent) * 1000 for sent, d in accepted if d in seen]
        span = max(s + lat for s, lat, _o, _d in results) - min(s for s, _l, _o, _d in results)
        print(
            f"servers: 2 processes, Redis bus, PostgreSQL; clients: {args.clients} processes x "
            f"{args.concurrency} concurrent bidders over HTTP for {args.seconds:.0f} s"
        )
        print(
            f"decisions: {len(results)} ({len(accepted)} accepted, {len(results) - len(accepted)} refused) "
            f"in {span:.1f} s = {len(results) / span:.0f} decisions/s"
        )
        print(f"bid-to-ack     p50 {pct(acks, 50):.1f} ms  p99 {pct(acks, 99):.1f} ms")
        print(
            f"bid-to-everyone p50 {pct(fanout, 50):.1f} ms  p99 {pct(fanout, 99):.1f} ms "
            f"({len(fanout)}/{len(accepted)} accepted bids seen by the listener)"
        )

        # wait for the close, then replay the accepted bids through the pure rules
        while time.time() * 1000 < ends_at_ms + 3000:
            time.sleep(0.5)
        with db.session() as s:
            lot_row = s.exec(select(AuctionLot).where(AuctionLot.show_id == show.id)).one()
            bids = s.exec(
                select(AuctionBid).where(AuctionBid.lot_id == lot_row.id).order_by(AuctionBid.seq)
            ).all()  # type: ignore[arg-type]
            orders = s.exec(select(Order).where(Order.listing_id == listing.id)).all()
        book = rules.open_auction(
            rules.Book(show.id or 0, seller.id or 0), listing.id or 0, 1000, duration * 1000, True, 0
        ).book
        for n, b in enumerate(bids):
            book = rules.bid(book, b.bidder_id, b.max_cents, n + 1).book
        expected = rules.standing(book.lot)  # type: ignore[arg-type]
        ok = (
            len(bids) == len(accepted)
            and lot_row.state == "closed"
            and len(orders) == 1
            and (orders[0].buyer_id, orders[0].price_cents) == (expected.leader_id, expected.price_cents)
        )
        print(
            f"replay check: {len(bids)} accepted bids persisted, winner {expected.leader_id} at "
            f"{expected.price_cents} cents, orders {[(o.buyer_id, o.price_cents) for o in orders]}: "
            f"{'OK' if ok else 'MISMATCH'}"
        )
        print(f"mean ack {statistics.mean(acks):.1f} ms")
        db.close()
        return 0 if ok else 1
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
