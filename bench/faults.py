"""Fault suite: two server processes on a private Redis and a private PostgreSQL, buyers bidding,
claiming and chatting on both, and a nemesis that kills and restarts what a deployment loses.

Faults (each measured for its recovery time):
  kill      kill -9 of the process that decides the show's claims and bids (found from /metrics), then
            start it again; recovery: the first claim or bid the show decides after the kill
  redis     Redis killed and started again empty; recovery: chat sent on one process seen on the
            other, from the moment Redis answers again
  pg        PostgreSQL stopped (every other one an immediate shutdown: a crash) and started again;
            recovery: the first decision after it is back
  restart   a server process restarted (SIGTERM, start) with ``--viewers`` sockets on it, which all
            reconnect at once; recovery: from the SIGTERM to the last of them back in the room
  offers    all along, every other auction sees its one unit sold through a private offer meanwhile
            (liked, offered, accepted over HTTP): the auction must close as sold elsewhere

Then it reads the outcome through the public interfaces only (the show's log, GET
/api/shows/{id}/events, and the seller's orders, GET /api/orders) and checks (bench/fault_check.py): no
unit sold twice, no acknowledged bid, claim, order or chat message lost, no order without an
acknowledged win, numbering never backwards, every command answered, every event seen live in the log,
no chat message missed by a client that stayed. It prints each count and the recovery p50/p99 per
fault, and exits 1 on any violation or a missed target (decisions again within 3 s of a kill, p99;
chat across processes within 5 s of Redis answering).

    .venv/bin/python bench/faults.py                  # the full run: 100 kills, 10 Redis, 5 PostgreSQL
    .venv/bin/python bench/faults.py --short          # what `make test` runs (tests/test_faults.py)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fault_check import ClientRecord, check, pct  # noqa: E402
from bench.fault_clients import Lots, Room, buyer, host, key  # noqa: E402
from bench.room import uvicorn_command  # noqa: E402
from bench.services import PrivatePostgres, PrivateRedis, free_port  # noqa: E402
from liveshow.ratelimit.service import UNLIMITED  # noqa: E402

KILL_TARGET_S = 3.0
CHAT_TARGET_S = 5.0


def cookie(secret: str, user_id: int) -> str:
    from itsdangerous import TimestampSigner

    payload = base64.b64encode(json.dumps({"uid": user_id, "csrf": "t"}).encode())
    return TimestampSigner(secret).sign(payload).decode()


class Server:
    """One liveshow process, started again on the same port after each kill or restart."""

    def __init__(self, env: dict[str, str], name: str) -> None:
        self.env = env
        self.name = name
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = open(Path(env["LIVESHOW_DATA_DIR"]) / f"{name}.log", "ab")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        cmd = uvicorn_command(self.port)
        self.proc = subprocess.Popen(
            cmd, env={**os.environ, **self.env}, cwd=ROOT, stdout=self.log, stderr=self.log
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server {self.name} did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def terminate(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

    def shows_led(self) -> int:
        try:
            with urllib.request.urlopen(self.url + "/metrics", timeout=2) as resp:
                for line in resp.read().decode().splitlines():
                    if line.startswith("liveshow_auction_shows_led "):
                        return int(float(line.split()[1]))
        except OSError:
            pass
        return 0


def setup(db_url: str, buyers: int, listings: int) -> dict[str, Any]:
    """The show, its seller, buyers and listings (set up directly; only the outcome is read publicly)."""
    from liveshow.accounts.models import User
    from liveshow.closet.models import Listing
    from liveshow.db import Database, migrate
    from liveshow.shows.models import LineupItem, Show

    migrate(db_url)
    db = Database(db_url)
    with db.session() as s:
        seller = User(username="fault-seller", password_hash="x")
        s.add(seller)
        s.commit()
        show = Show(seller_id=seller.id or 0, title="Faults", stream_key=secrets.token_hex(8), state="live")
        s.add(show)
        people = [User(username=f"fault-buyer-{i}", password_hash="x") for i in range(buyers)]
        s.add_all(people)
        s.commit()
        items = []
        for i in range(listings):
            # Auctions (even places) sell the one unit; claim sales (odd places) three.
            item = Listing(
                seller_id=seller.id or 0,
                title=f"Item {i}",
                size="M",
                price_cents=1000 + 100 * i,
                quantity=1 if i % 2 == 0 else 3,
            )
            s.add(item)
            s.commit()
            s.add(LineupItem(show_id=show.id or 0, listing_id=item.id or 0, position=i))
            items.append(item.id or 0)
        s.commit()
        out = {
            "show_id": show.id,
            "seller_id": seller.id,
            "buyers": [u.id for u in people],
            "listings": items,
        }
    db.close()
    return out


def post_json(url: str, cookie_value: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Cookie", f"liveshow_session={cookie_value}")
    request.add_header("Content-Type", "application/json")
    request.add_header("X-CSRF-Token", "t")
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def offer_and_accept(urls: list[str], listing_id: int, seller: str, buyer: str, buyer_id: int) -> bool:
    """Sell the listing's unit through a private offer (the buyer likes it, the seller offers, the
    buyer accepts), as a seller may while its auction runs; whether the buyer got it."""
    if not urls:
        return False
    base = random.choice(urls)
    try:
        post_json(f"{base}/api/listings/{listing_id}/like", buyer, {})
        made = post_json(
            f"{base}/api/listings/{listing_id}/offers",
            seller,
            {"price_cents": 500, "minutes": 30, "to": [buyer_id]},
        )
        offer = made["offers"][0]
        accepted = post_json(f"{base}/api/offers/{offer['id']}/accept", buyer, {})
    except (OSError, KeyError, IndexError, ValueError) as exc:
        # Refused (the auction sold it first, a server restarting): nothing was sold.
        detail = exc.read().decode()[:200] if isinstance(exc, urllib.error.HTTPError) else ""
        print(f"offer on listing {listing_id} not taken: {exc} {detail}", flush=True)
        return False
    return bool(accepted.get("order_id"))


def get_json(url: str, cookie_value: str | None = None) -> Any:
    request = urllib.request.Request(url)
    if cookie_value is not None:
        request.add_header("Cookie", f"liveshow_session={cookie_value}")
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())


def read_log(base: str, show_id: int) -> list[dict[str, Any]]:
    """Every event of the show's durable log, through its public reader (paged)."""
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = get_json(f"{base}/api/shows/{show_id}/events?after_seq={after}&limit=1000")
        events.extend(page["events"])
        after = int(page["next_after_seq"])
        if not page.get("more"):
            return events


def read_orders(base: str, seller_cookie: str, user_ids: dict[str, int]) -> list[dict[str, Any]]:
    """The seller's orders through GET /api/orders (paged), as the verdict's plain records."""
    orders: list[dict[str, Any]] = []
    url: str | None = f"{base}/api/orders?role=seller&limit=100"
    while url is not None:
        page = get_json(url, seller_cookie)
        for row in page["orders"]:
            orders.append(
                {
                    "listing_id": row["listing"]["id"],
                    "unit_no": row["unit"],
                    "buyer_id": user_ids.get(row["buyer"], -1),
                    "source": row["source"],
                    "status": row["status"],
                }
            )
        url = base + page["next"] if page.get("next") else None
    return orders


class Suite:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.rng = random.Random(args.seed)
        self.redis = PrivateRedis(workdir / "redis")
        self.pg: PrivatePostgres | None = None
        self.servers: list[Server] = []
        self.decided: list[float] = []
        self.recovery: dict[str, list[float]] = {"kill": [], "redis": [], "pg": [], "restart": []}
        self.failed: dict[str, int] = {"kill": 0, "redis": 0, "pg": 0, "restart": 0}
        self.records: list[ClientRecord] = []
        self.viewer_records: list[ClientRecord] = []
        self.sold_elsewhere = 0  # units the nemesis sold through offers while their auction ran

    def urls(self) -> list[str]:
        return [s.url for s in self.servers if s.up]

    async def run(self) -> int:
        args = self.args
        self.redis.start()
        self.pg = pg = PrivatePostgres.create()
        db_url = pg.new_database()
        world = setup(db_url, args.buyers, args.listings)
        secret = secrets.token_hex(16)
        env = {
            "LIVESHOW_DATABASE_URL": db_url,
            "LIVESHOW_BUS_URL": self.redis.url,
            "LIVESHOW_SECRET_KEY": secret,
            "LIVESHOW_DATA_DIR": str(self.workdir / "data"),
            "LIVESHOW_LOG_LEVEL": "WARNING",
            # Every client here is one address: only the per-account chat limit stays, as in production.
            **{f"LIVESHOW_{k.upper()}": v for k, v in UNLIMITED.items()},
        }
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        self.servers = [Server(env, "a"), Server(env, "b")]
        for server in self.servers:
            await asyncio.to_thread(server.start)
        show_id = int(world["show_id"])
        stop = asyncio.Event()
        lots = Lots()
        seller_cookie = cookie(secret, int(world["seller_id"]))
        host_room = Room(
            self.urls, show_id, seller_cookie, ClientRecord(int(world["seller_id"])), lots.on_frame
        )
        rooms = [
            Room(self.urls, show_id, cookie(secret, uid), ClientRecord(uid), lots.on_frame)
            for uid in world["buyers"]
        ]
        self.records = [r.record for r in rooms]
        by_id = {r.record.user_id: r.record for r in rooms}

        async def sell_elsewhere(listing_id: int) -> None:
            buyer_id = self.rng.choice(list(by_id))
            took = await asyncio.to_thread(
                offer_and_accept, self.urls(), listing_id, seller_cookie, cookie(secret, buyer_id), buyer_id
            )
            if took:
                by_id[buyer_id].offers.append(listing_id)
                self.sold_elsewhere += 1

        tasks = [
            asyncio.create_task(
                host(host_room, world["listings"], stop, args.auction_seconds, sell_elsewhere)
            )
        ]
        tasks += [asyncio.create_task(buyer(r, lots, stop, self.decided.append)) for r in rooms]
        # Probes measure recovery: one claim on a lot that does not exist (the writer must decide it to
        # refuse it) and a chat pair across the two processes.
        probe_records = [ClientRecord(int(world["buyers"][0])), ClientRecord(int(world["buyers"][1]))]
        sender = Room(lambda: self.urls()[:1], show_id, cookie(secret, world["buyers"][0]), probe_records[0])
        receiver = Room(
            lambda: self.urls()[1:], show_id, cookie(secret, world["buyers"][1]), probe_records[1]
        )
        await sender.connect()
        await receiver.connect()
        await asyncio.sleep(args.warmup)

        plan = ["kill"] * args.kills + ["redis"] * args.redis_restarts + ["pg"] * args.pg_restarts
        plan += ["restart"] * args.server_restarts
        self.rng.shuffle(plan)
        started = time.monotonic()
        for n, fault in enumerate(plan, 1):
            took = await getattr(self, f"fault_{fault}")(show_id, sender, receiver, secret)
            if took is None:
                self.failed[fault] += 1
            else:
                self.recovery[fault].append(took)
            print(
                f"[{time.monotonic() - started:6.1f} s] fault {n}/{len(plan)} {fault}: "
                f"{'no recovery' if took is None else f'{took:.2f} s'}",
                flush=True,
            )
            await asyncio.sleep(args.gap)

        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(2)  # the archive flushes every 0.2 s; the writer's last close announces
        for room in [host_room, sender, receiver, *rooms]:
            await room.close()
        base = self.urls()[0]
        events = await asyncio.to_thread(read_log, base, show_id)
        names = {f"fault-buyer-{i}": uid for i, uid in enumerate(world["buyers"])}
        orders = await asyncio.to_thread(read_orders, base, seller_cookie, names)
        verdict = check(self.records + self.viewer_records, events, orders)
        for name, texts in verdict.examples.items():
            print(f"examples of {name}:", *texts, sep="\n  ")
        return self.report(verdict.counts, verdict.violations, rooms)

    async def probe_decision(self, room: Room, since: float) -> float | None:
        answer = await room.command({"type": "claim", "key": key(), "lot_no": 999_999, "quantity": 1})
        if answer is None or answer.get("code") == "internal":
            return None
        return time.monotonic() - since

    async def fault_kill(self, show_id: int, sender: Room, _receiver: Room, _secret: str) -> float | None:
        leaders = [s for s in self.servers if s.up and s.shows_led() > 0]
        victim = leaders[0] if leaders else self.rng.choice(self.servers)
        victim.kill()
        t0 = time.monotonic()
        took = await self.probe_decision(sender, t0)
        await asyncio.to_thread(victim.start)
        return took

    async def fault_redis(self, show_id: int, sender: Room, receiver: Room, _secret: str) -> float | None:
        self.redis.kill()
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        self.redis.start()
        t0 = time.monotonic()
        marker = f"probe {secrets.token_hex(4)}"
        seen = asyncio.Event()

        def watch(frame: dict[str, Any]) -> None:
            if frame.get("type") == "chat.message" and frame.get("text") == marker:
                seen.set()

        receiver.on_frame = watch
        try:
            answer = await sender.command({"type": "chat.send", "key": key(), "text": marker})
            if answer is None or answer.get("type") != "chat.sent":
                return None
            sender.record.chats[int(answer["message_id"])] = marker
            await asyncio.wait_for(seen.wait(), 30)
        except TimeoutError:
            return None
        finally:
            receiver.on_frame = None
        return time.monotonic() - t0

    async def fault_pg(self, show_id: int, sender: Room, _receiver: Room, _secret: str) -> float | None:
        pg = self.pg
        assert pg is not None
        crash = len(self.recovery["pg"]) % 2 == 1
        await asyncio.to_thread(pg.crash if crash else pg.stop)
        await asyncio.sleep(self.rng.uniform(1.0, 3.0))
        await asyncio.to_thread(pg.start)
        return await self.probe_decision(sender, time.monotonic())

    async def fault_restart(self, show_id: int, _sender: Room, _receiver: Room, _secret: str) -> float | None:
        victim = self.servers[1]
        records = [ClientRecord(0) for _ in range(self.args.viewers)]
        self.viewer_records.extend(records)

        def there() -> list[str]:  # the viewers watch on the victim while it is up, then anywhere
            return [victim.url] if victim.up else self.urls()

        viewers = [Room(there, show_id, None, r) for r in records]
        for chunk in range(0, len(viewers), 100):
            await asyncio.gather(*(v.connect() for v in viewers[chunk : chunk + 100]))
        await until(lambda: all(v.joined_at is not None for v in viewers), 60)
        # From the SIGTERM: a viewer may be back (on the other process) before terminate() returns.
        t0 = time.monotonic()
        await asyncio.to_thread(victim.terminate)
        await asyncio.to_thread(victim.start)
        if not await until(lambda: all(v.joined_at is not None and v.joined_at > t0 for v in viewers), 60):
            back = sum(1 for v in viewers if v.joined_at is not None and v.joined_at > t0)
            print(f"restart: {back} of {len(viewers)} viewers back after 60 s", flush=True)
            for v in viewers:
                await v.close()
            return None
        took = time.monotonic() - t0
        await asyncio.sleep(2)  # they keep watching a moment, then leave
        for v in viewers:
            await v.close()
        return took

    def report(self, counts: dict[str, int], violations: list[str], rooms: list[Room]) -> int:
        print("\nrecovery after each kind of fault (s):")
        print(f"{'fault':>8} {'count':>6} {'no recovery':>12} {'p50':>7} {'p99':>7} {'max':>7}")
        for kind, values in self.recovery.items():
            if not values and not self.failed[kind]:
                continue
            p50, p99 = pct(values, 50), pct(values, 99)
            print(
                f"{kind:>8} {len(values) + self.failed[kind]:>6} {self.failed[kind]:>12} "
                f"{_f(p50):>7} {_f(p99):>7} {_f(max(values) if values else None):>7}"
            )
        print("\ncounts:")
        for name, value in counts.items():
            print(f"  {name}: {value}")
        print(f"  socket reconnects (buyers): {sum(r.reconnects for r in rooms)}")
        print(f"  units sold through offers while their auction ran: {self.sold_elsewhere}")
        kill_p99 = pct(self.recovery["kill"], 99)
        if kill_p99 is not None and kill_p99 > KILL_TARGET_S:
            violations.append(f"decisions again after a kill: p99 {kill_p99:.2f} s > {KILL_TARGET_S:g} s")
        chat_max = max(self.recovery["redis"], default=None)
        if chat_max is not None and chat_max > CHAT_TARGET_S:
            violations.append(f"chat across processes after Redis: {chat_max:.2f} s > {CHAT_TARGET_S:g} s")
        for kind, n in self.failed.items():
            if n:
                violations.append(f"{kind}: {n} faults without recovery")
        print("\nverdict:", "PASS" if not violations else "FAIL")
        for v in violations:
            print("  -", v)
        return 0 if not violations else 1

    def close(self) -> None:
        for server in self.servers:
            server.kill()
            server.log.close()
        self.redis.close()
        if self.pg is not None:
            self.pg.close()


async def until(condition: Callable[[], bool], timeout: float) -> bool:
    """Whether ``condition`` came true within ``timeout`` seconds (checked every 0.1 s)."""
    for _ in range(int(timeout * 10)):
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="the short form that make test runs")
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--redis-restarts", type=int, default=10)
    parser.add_argument("--pg-restarts", type=int, default=5)
    parser.add_argument("--server-restarts", type=int, default=1)
    parser.add_argument("--viewers", type=int, default=1000, help="sockets reconnecting at a server restart")
    parser.add_argument("--buyers", type=int, default=30)
    parser.add_argument("--listings", type=int, default=40)
    parser.add_argument("--auction-seconds", type=int, default=5)
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between faults")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.short:
        args.kills, args.redis_restarts, args.pg_restarts, args.server_restarts = 3, 2, 2, 1
        args.viewers, args.buyers, args.listings, args.gap, args.warmup = 100, 10, 20, 2.0, 2.0
    from bench import machine

    print(machine.describe(), flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="liveshow-faults-"))
    suite = Suite(args, workdir)
    rc = 1
    try:
        rc = asyncio.run(suite.run())
        return rc
    finally:
        suite.close()
        logs = workdir / "data"
        if rc == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        else:  # the servers' logs are where a failure is explained: keep them
            for log in sorted(logs.glob("*.log")):
                kept = logs.parent / f"kept-{log.name}"
                shutil.copy(log, kept)
                print(f"server log kept: {kept}")
            shutil.rmtree(logs / "recordings", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
