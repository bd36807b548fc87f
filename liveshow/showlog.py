"""A show's event log: publish a room event on the bus and keep it for replay.

The bus numbers the event (the show's ``seq``) and fans it out; the archive keeps public events in the
``show_events`` table so a replay can show chat, items and sales in step with the recording. Archiving is
batched off the hot path: a flush every ``flush_interval`` seconds, one INSERT for many events.

A process that publishes an event may die before its next flush (kill -9), while other processes have
already shown the event to their sockets. So every process also archives what its rooms deliver
(``witness``), skipping duplicates: an event is kept as long as any process that showed it survives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, Session, SQLModel, col, select
from starlette.concurrency import run_in_threadpool

from liveshow import jsonwire
from liveshow.bus import Bus, Event
from liveshow.db import Database, LoopConnection, insert_new, loop_connection, table_of

log = logging.getLogger(__name__)

# Events that describe the moment, not the show: never archived (presence counts, typing, private notices).
EPHEMERAL_TYPES = frozenset({"presence", "snapshot"})
# Bound on events waiting for the database, so an outage cannot grow memory without limit.
MAX_PENDING = 200_000
# A delivered event is archived by its reader this long after delivery, unless its publisher has by then.
WITNESS_DELAY = 1.0
MINE_KEPT = 50_000  # recent (show, seq) this process published, skipped when its rooms deliver them

# Rows archived unless stored already, in one statement on the event loop (PostgreSQL): a leader
# archives every decided batch before answering it, and the Session path cost a thread hop, a pool
# checkout, BEGIN, INSERT and COMMIT per batch (about a tenth of the leader's samples in py-spy at
# 2,000 bids/s, bench/bids.py). The rows travel as one JSON text made by orjson: as five arrays,
# psycopg dumped every element in Python (a timestamp dumper per row).
ARCHIVE_NEW = """
INSERT INTO show_events (show_id, seq, type, data, at)
SELECT r.show_id, r.seq, r.type, r.data, r.at
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(show_id int, seq int, type text, data text, at timestamptz)
ON CONFLICT (show_id, seq) DO NOTHING
"""


def show_topic(show_id: int) -> str:
    return f"show:{show_id}"


class ShowEvent(SQLModel, table=True):
    __tablename__ = "show_events"
    __table_args__ = (UniqueConstraint("show_id", "seq", name="uq_show_events_show_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    show_id: int = Field(foreign_key="shows.id", index=True)
    seq: int
    type: str = Field(max_length=40)
    data: str  # JSON
    at: datetime


class ShowLog:
    def __init__(self, bus: Bus, db: Database, flush_interval: float = 0.2) -> None:
        self.bus = bus
        self.db = db
        self._loop_db: LoopConnection | None = loop_connection(db)
        self.flush_interval = flush_interval
        self._pending: list[dict[str, Any]] = []  # rows to archive at the next flush
        # Events other processes published and this one delivered: archived unless stored already.
        self._witnessed: list[tuple[float, dict[str, Any]]] = []  # (when delivered, row)
        # (show, seq) of what this process published lately: its own archive has them, no need to
        # witness them as well.
        self._mine: set[tuple[int, int]] = set()
        self._mine_order: deque[tuple[int, int]] = deque()
        self._task: asyncio.Task[None] | None = None

    async def publish(self, show_id: int, type: str, data: dict[str, Any], durable: bool = False) -> Event:
        return (await self.publish_many(show_id, [(type, data)], durable=durable))[0]

    async def publish_many(
        self, show_id: int, items: list[tuple[str, dict[str, Any]]], durable: bool = False
    ) -> list[Event]:
        """Several events of one show in one bus round trip, numbered in the order given.

        ``durable``: archived before this returns (one INSERT), not at the next flush, for events whose
        senders are told they were accepted (a chat message, a decision): a process killed just after
        answering must not take them out of the show's log. Should the database refuse the write, they
        wait for the flush as usual."""
        events = await self.bus.publish_many(show_topic(show_id), items)
        if not durable:
            for event in events:
                self._archive(show_id, event)
            return events
        kept = [e for e in events if _public(e)]
        for event in kept:
            self._remember_mine((show_id, event.seq))
        try:
            await self._archive_new([_row(show_id, e) for e in kept])
        except Exception as exc:
            log.warning("archiving %d show events at once failed (%s); the flush retries", len(kept), exc)
            self._pending.extend(_row(show_id, e) for e in kept)
        return events

    def _archive(self, show_id: int, event: Event) -> None:
        if _public(event):
            self._remember_mine((show_id, event.seq))
            self._pending.append(_row(show_id, event))

    def _remember_mine(self, key: tuple[int, int]) -> None:
        self._mine.add(key)
        self._mine_order.append(key)
        if len(self._mine_order) > MINE_KEPT:
            self._mine.discard(self._mine_order.popleft())

    def witness(self, show_id: int, event: Event) -> None:
        """An event this process's room delivered: archive it too, unless this process published it."""
        if not _public(event) or (show_id, event.seq) in self._mine:
            return
        self._witnessed.append((time.monotonic(), _row(show_id, event)))
        if len(self._witnessed) > MAX_PENDING:
            del self._witnessed[: len(self._witnessed) - MAX_PENDING]

    async def start(self) -> None:
        self._task = asyncio.create_task(self._flush_forever(), name="showlog-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
        await self._flush_witnessed(float("inf"))
        if self._loop_db is not None:
            await self._loop_db.close()

    async def flush(self) -> None:
        await self._flush_witnessed(time.monotonic() - WITNESS_DELAY)
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            # Skipping what is stored already (another process witnessed it first, or a process that
            # crashed after archiving it).
            await self._archive_new(batch)
        except Exception:
            # The database is away: keep them for the next flush rather than lose a sale from the replay.
            log.exception("archiving %d show events failed; will retry", len(batch))
            self._requeue(batch)

    def _requeue(self, rows: list[dict[str, Any]]) -> None:
        self._pending[:0] = rows
        if len(self._pending) > MAX_PENDING:
            dropped = len(self._pending) - MAX_PENDING
            del self._pending[:dropped]
            log.error("show event archive is %d events behind; dropped the %d oldest", MAX_PENDING, dropped)

    async def _flush_witnessed(self, before: float) -> None:
        """Archive what the rooms delivered up to ``before``: by then the publisher has normally stored
        it (and this insert skips it); when the publisher died first, this is the copy that is kept."""
        due = [row for at, row in self._witnessed if at <= before]
        if not due:
            return
        self._witnessed = [(at, row) for at, row in self._witnessed if at > before]
        try:
            await self._archive_new(due)
        except Exception:
            log.warning("archiving %d delivered show events failed; will retry", len(due))
            self._witnessed[:0] = [(before, row) for row in due[-MAX_PENDING:]]

    async def _archive_new(self, rows: list[dict[str, Any]]) -> None:
        """Store the rows not stored yet: on the event loop on PostgreSQL, else in a thread."""
        if not rows:
            return
        if self._loop_db is None:
            await run_in_threadpool(self._insert_new, rows)
            return
        # orjson writes each aware datetime as RFC 3339 with its microseconds: read back exactly.
        await self._loop_db.execute(ARCHIVE_NEW, {"rows": jsonwire.dumps(rows)})

    def _insert_new(self, rows: list[dict[str, Any]]) -> None:
        with self.db.session() as session:
            insert_new(session, table_of(ShowEvent), rows)
            session.commit()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()

    def archived(self, show_id: int, after_seq: int = 0, limit: int = 10_000) -> list[ShowEvent]:
        with self.db.session() as session:
            return list(archived_events(session, show_id, after_seq, limit))


def _public(event: Event) -> bool:
    """Whether an event belongs in the show's log: not the moment's (presence), not someone's own."""
    return event.type not in EPHEMERAL_TYPES and "to" not in event.data


def _row(show_id: int, event: Event) -> dict[str, Any]:
    """The event as a row of show_events. A plain dict, not the model: building a SQLModel object
    validates every field, and every process builds one per public event it publishes or delivers."""
    return {
        "show_id": show_id,
        "seq": event.seq,
        "type": event.type,
        "data": jsonwire.dumps(event.data),
        "at": datetime.fromtimestamp(event.ts_ms / 1000, UTC),
    }


def archived_events(
    session: Session, show_id: int, after_seq: int = 0, limit: int = 10_000
) -> list[ShowEvent]:
    rows = session.exec(
        select(ShowEvent)
        .where(ShowEvent.show_id == show_id, col(ShowEvent.seq) > after_seq)
        .order_by(col(ShowEvent.seq))
        .limit(limit)
    )
    return list(rows)
