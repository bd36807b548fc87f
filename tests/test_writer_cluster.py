"""The single writer across real server processes (Redis + PostgreSQL): 200 concurrent claimants over
two processes for one unit give exactly one order; killing the deciding process mid-auction loses no
accepted bid and the auction goes on to the right winner."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from liveshow.accounts.models import User
from liveshow.accounts.service import issue_token
from liveshow.auction import rules
from liveshow.auction.models import AuctionBid
from liveshow.db import Database
from liveshow.orders.models import Order
from liveshow.ratelimit.service import UNLIMITED
from tests.auction_fixtures import make_world
from tests.conftest import REDIS_URL, free_port

pytestmark = [pytest.mark.redis, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parent.parent


class Server:
    def __init__(self, tmp: Path, db_url: str, prefix: str, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(
            LIVESHOW_BUS_URL=REDIS_URL,
            LIVESHOW_DATABASE_URL=db_url,
            LIVESHOW_BUS_PREFIX=prefix,
            LIVESHOW_DATA_DIR=str(tmp / name),
            LIVESHOW_SECRET_KEY="cluster-test-secret",
            LIVESHOW_LOG_LEVEL="WARNING",
        )
        # 200 claimants and retried bids from one address: the limits have tests of their own.
        env.update({f"LIVESHOW_{k.upper()}": v for k, v in UNLIMITED.items()})
        self.log = open(tmp / f"{name}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "liveshow.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(
                    f"server {name} did not start: {(tmp / f'{name}.log').read_text()[-2000:]}"
                )
            time.sleep(0.1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str, redis_prefix: str) -> Iterator[tuple[Any, ...]]:
    db = Database(postgres_url)
    servers: list[Server] = []

    def spawn(name: str) -> Server:
        server = Server(tmp_path, postgres_url, redis_prefix, name)
        servers.append(server)
        return server

    yield db, spawn
    for server in servers:
        server.stop()
    db.close()


def tokens_for(db: Database, count: int) -> list[tuple[int, str]]:
    """Viewers with API tokens (no password hashing: 200 argon2 hashes would dominate the test)."""
    out = []
    with db.session() as s:
        for _ in range(count):
            user = User(username=f"v-{secrets.token_hex(5)}", password_hash="!")
            s.add(user)
            s.commit()
            s.refresh(user)
            assert user.id is not None
            out.append((user.id, issue_token(s, user)))
    return out


async def post(client: httpx.AsyncClient, url: str, token: str, **message: Any) -> httpx.Response:
    return await client.post(url, json=message, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_200_claimants_over_two_processes_one_unit_one_order(cluster: tuple[Any, ...]) -> None:
    db, spawn = cluster
    world = make_world(db, viewers=0, quantities=(1,))
    with db.session() as s:
        seller = s.get(User, world.seller.id)
        assert seller is not None
        seller_token = issue_token(s, seller)
    viewers = tokens_for(db, 200)
    a, b = spawn("a"), spawn("b")
    path = f"/api/shows/{world.show_id}/auction"

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient() as client:
            opened = await post(
                client,
                a.url + path,
                seller_token,
                type="lot.open",
                listing_id=world.listings[0].id,
                mode="claim",
            )
            assert opened.status_code == 200, opened.text
            return await asyncio.gather(
                *[
                    post(
                        client,
                        (a if i % 2 else b).url + path,
                        token,
                        type="claim",
                        key=f"claim-{i:04d}-{uid}",
                    )
                    for i, (uid, token) in enumerate(viewers)
                ]
            )

    replies = asyncio.run(run())
    ok = [r for r in replies if r.status_code == 200]
    refused = [r.json()["error"] for r in replies if r.status_code != 200]
    assert len(ok) == 1, [r.text for r in replies[:5]]
    assert set(refused) == {"sold_out"} and len(refused) == 199
    with db.session() as s:
        orders = s.exec(select(Order)).all()
    assert len(orders) == 1 and orders[0].unit_no == 1 and orders[0].status == "awaiting_payment"


def test_killing_the_deciding_process_loses_no_accepted_bid(cluster: tuple[Any, ...]) -> None:
    db, spawn = cluster
    world = make_world(db, viewers=0, quantities=(1,))
    with db.session() as s:
        seller = s.get(User, world.seller.id)
        assert seller is not None
        seller_token = issue_token(s, seller)
    bidders = tokens_for(db, 4)
    a = spawn("a")
    path = f"/api/shows/{world.show_id}/auction"
    accepted: list[tuple[int, int]] = []

    async def bid(client: httpx.AsyncClient, server: Server, i: int, amount: int) -> None:
        uid, token = bidders[i % len(bidders)]
        key = f"bid-{i:04d}-{amount}"
        for _attempt in range(4):  # a retry with the same key gets the first answer, never a 2nd bid
            r = await post(client, server.url + path, token, type="bid", key=key, max_cents=amount)
            if r.status_code != 503:
                break
        assert r.status_code == 200, r.text
        accepted.append((uid, amount))

    async def run() -> None:
        async with httpx.AsyncClient() as client:
            opened = await post(
                client,
                a.url + path,
                seller_token,
                type="lot.open",
                listing_id=world.listings[0].id,
                mode="auction",
                start_cents=1000,
                duration_s=25,
                sudden_death=True,
            )
            assert opened.status_code == 200, opened.text
            b = spawn("b")  # a is the leader by now; b only forwards
            amount = 1000
            for i in range(10):
                await bid(client, b if i % 2 else a, i, amount)
                amount += 300
            a.kill()  # the decider dies mid-auction
            for i in range(10, 20):
                await bid(client, b, i, amount)
                amount += 300
            state = (await post(client, b.url + path, seller_token, type="lot.state")).json()
            assert state["lot"]["state"] == "open" and state["lot"]["bids"] == 20

    asyncio.run(run())
    with db.session() as s:
        rows = s.exec(select(AuctionBid).order_by(AuctionBid.id)).all()  # type: ignore[arg-type]
    assert [(r.bidder_id, r.max_cents) for r in rows] == accepted
    assert len({r.epoch for r in rows}) == 2  # decided by two writers, fenced by epoch
    # the auction closes on time under the new writer, with the winner a replay of the bids gives
    book = rules.open_auction(
        rules.Book(world.show_id, world.seller.id or 0), world.listings[0].id or 0, 1000, 25_000, True, 0
    ).book
    for n, (uid, amount) in enumerate(accepted):
        book = rules.bid(book, uid, amount, n + 1).book
    expected = rules.standing(book.lot)  # type: ignore[arg-type]
    deadline = time.monotonic() + 40
    orders: list[Order] = []
    while time.monotonic() < deadline and not orders:
        time.sleep(0.3)
        with db.session() as s:
            orders = list(s.exec(select(Order)).all())
    assert len(orders) == 1
    assert (orders[0].buyer_id, orders[0].price_cents) == (expected.leader_id, expected.price_cents)
