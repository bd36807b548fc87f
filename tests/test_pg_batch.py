"""The one-statement batch commit on PostgreSQL (auction/pg_batch.py) against the Session path it
short-cuts: the same commands, on the same clock, leave the same rows; a stale epoch writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from liveshow.auction import writer as writer_module
from liveshow.auction.commands import Command
from liveshow.auction.writer import Fenced, ShowWriter
from liveshow.bus import make_bus
from liveshow.db import Database
from liveshow.showlog import ShowLog
from tests.auction_fixtures import World, key, make_world
from tests.conftest import PostgresTemplate

pytestmark = pytest.mark.postgres

TABLES = {
    "auction_writers": "show_id, epoch, seq, stream_pos",
    "auction_decisions": "show_id, epoch, seq, kind, user_id, idem_key, fingerprint, accepted, reply, at_ms",
    "auction_bids": "show_id, lot_id, epoch, seq, bidder_id, max_cents, at_ms",
    "auction_claims": "show_id, lot_id, epoch, seq, buyer_id, quantity, at_ms",
    "auction_lots": "id, show_id, lot_no, listing_id, kind, state, state_json, opened_at, closed_at",
    "orders": "buyer_id, seller_id, listing_id, unit_no, price_cents, source, show_id, lot_id, status",
}


class Clock:
    def __init__(self) -> None:
        self.ms = 1_800_000_000_000

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    # The writer stamps decisions with the wall clock: both runs must see the same times.
    fake = Clock()
    monkeypatch.setattr(writer_module, "wall_ms", fake)
    return fake


@pytest.fixture
def two_databases(pg_template: PostgresTemplate) -> Iterator[tuple[Database, Database]]:
    one, other = Database(pg_template.new_database()), Database(pg_template.new_database())
    yield one, other
    one.close()
    other.close()


def bid(w: World, who: int, cents: int, idem: str) -> Command:
    return Command("bid", w.show_id, w.viewers[who].id, idem, {"max_cents": cents, "lot_no": None})


def open_auction(w: World, listing: int, idem: str) -> Command:
    payload = {"listing_id": w.listings[listing].id, "mode": "auction", "start_cents": 1000}
    return Command(
        "lot.open", w.show_id, w.seller.id, idem, {**payload, "duration_s": 30, "sudden_death": False}
    )


def open_claim(w: World, listing: int, idem: str) -> Command:
    payload = {"listing_id": w.listings[listing].id, "mode": "claim", "price_cents": None, "quantity": None}
    return Command("lot.open", w.show_id, w.seller.id, idem, {**payload, "per_buyer_limit": None})


def script(w: World) -> list[list[Command]]:
    """Batches touching every row a batch can write: new lots, bids accepted and refused, a retry and a
    reused key, a sale by the clock, claims, and a lot closed by the clock with no bid. Keys are
    numbered so that both runs send the same commands."""
    numbers = iter(range(1, 100))
    first = bid(w, 0, 1000, "k-first")

    def key() -> str:
        return f"k-{next(numbers)}"

    return [
        [open_auction(w, 0, key())],
        [first, bid(w, 1, 1000, key()), bid(w, 1, 1500, key()), first, bid(w, 0, 2000, "k-first")],
        [
            Command("bid", w.show_id, w.seller.id, key(), {"max_cents": 5000, "lot_no": None}),
            bid(w, 2, 1600, key()),
        ],
        [bid(w, 0, 9000, key()), bid(w, 1, 2500, key())],
        [Command("tick", w.show_id, None, None)],  # after the clock passed the end: a sale
        [open_claim(w, 1, key())],
        [
            Command("claim", w.show_id, w.viewers[i].id, key(), {"quantity": 1, "lot_no": None})
            for i in range(3)
        ],
        [Command("lot.close", w.show_id, w.seller.id, key(), {})],
        [open_auction(w, 2, key())],
        [Command("tick", w.show_id, None, None)],  # after the end, no bid: closed unsold
    ]


async def run_script(db: Database, clock: Clock, one_statement: bool) -> tuple[list[Any], int]:
    w = make_world(db, viewers=3, quantities=(1, 3, 1))
    writer = ShowWriter(db, ShowLog(make_bus("memory://"), db), w.show_id)
    used = 0
    if one_statement:
        assert writer._pg is not None
        commit = writer._pg.commit

        async def counting(*args: Any) -> bool:
            nonlocal used
            used += 1
            return await commit(*args)

        writer._pg.commit = counting  # type: ignore[method-assign, assignment]
    else:
        writer._pg = None
    writer.acquire()
    answers: list[Any] = []
    for batch in script(w):
        if batch[0].kind == "tick":
            clock.ms += 31_000
        for _command, answer in await writer.run_batch(batch, stream_pos=f"{clock.ms}-0"):
            answers.append(answer)
        clock.ms += 250
    await writer.close()
    return answers, used


def table_rows(db: Database) -> dict[str, list[Any]]:
    with db.engine.connect() as conn:
        return {
            name: [tuple(r) for r in conn.execute(text(f"SELECT {cols} FROM {name} ORDER BY {cols}"))]
            for name, cols in TABLES.items()
        }


async def test_one_statement_commit_writes_what_the_session_path_writes(
    two_databases: tuple[Database, Database], clock: Clock
) -> None:
    fast_db, session_db = two_databases
    start = clock.ms
    fast_answers, fast_used = await run_script(fast_db, clock, one_statement=True)
    clock.ms = start
    session_answers, session_used = await run_script(session_db, clock, one_statement=False)
    assert fast_answers == session_answers
    # one statement: the three bid batches, the refused close of the sold-out lot, the unsold close
    assert fast_used == 5 and session_used == 0
    fast_rows, session_rows = table_rows(fast_db), table_rows(session_db)
    assert fast_rows == session_rows
    assert len(fast_rows["auction_bids"]) == 5 and len(fast_rows["orders"]) == 4
    closed = fast_rows["auction_lots"][-1]
    assert closed[5] == "closed" and closed[8] is not None  # the unsold lot's close time, in one statement
    # the reply JSON kept through jsonb: the reused key's refusal, the retry answered once
    refusals = [r for r in fast_rows["auction_decisions"] if not r[7]]
    assert any('"bid_too_low"' in r[8] for r in refusals) and any('"self_bidding"' in r[8] for r in refusals)


async def test_a_stale_epoch_writes_nothing_in_one_statement(
    two_databases: tuple[Database, Database], clock: Clock
) -> None:
    db, _other = two_databases
    w = make_world(db, viewers=2, quantities=(1,))
    showlog = ShowLog(make_bus("memory://"), db)
    old = ShowWriter(db, showlog, w.show_id)
    old.acquire()
    await old.run_batch([open_auction(w, 0, key())])
    await old.run_batch([bid(w, 0, 1000, key())])
    new = ShowWriter(db, showlog, w.show_id)
    new.acquire()  # epoch + 1: the old writer is fenced out
    before = table_rows(db)
    with pytest.raises(Fenced):
        await old.run_batch([bid(w, 1, 2000, key())])
    assert table_rows(db) == before
    assert old.seq == before["auction_writers"][0][2]  # the refused batch did not advance the writer
    answer = (await new.run_batch([bid(w, 1, 2000, key())]))[0][1]
    assert answer["ok"]["leading"] is True and answer["ok"]["dseq"] == old.seq + 1
    await old.close()
    await new.close()
