"""A show's event log: publish a room event on the bus and keep it for replay.

The bus numbers the event (the show's ``seq``) and fans it out; the archive keeps public events in the
``show_events`` table so a replay can show chat, items and sales in step with the recording. Archiving is
batched off the hot path: a flush every ``flush_interval`` seconds, one INSERT for many events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select
from starlette.concurrency import run_in_threadpool

from liveshow import jsonwire
from liveshow.bus import Bus, Event
from liveshow.db import Database, bulk_insert, table_of

log = logging.getLogger(__name__)

# Events that describe the moment, not the show: never archived (presence counts, typing, private notices).
EPHEMERAL_TYPES = frozenset({"presence", "snapshot"})
# Bound on events waiting for the database, so an outage cannot grow memory without limit.
MAX_PENDING = 200_000


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
        self.flush_interval = flush_interval
        self._pending: list[ShowEvent] = []
        self._task: asyncio.Task[None] | None = None

    async def publish(self, show_id: int, type: str, data: dict[str, Any]) -> Event:
        event = await self.bus.publish(show_topic(show_id), type, data)
        self._archive(show_id, event)
        return event

    async def publish_many(self, show_id: int, items: list[tuple[str, dict[str, Any]]]) -> list[Event]:
        """Several events of one show in one bus round trip, numbered in the order given."""
        events = await self.bus.publish_many(show_topic(show_id), items)
        for event in events:
            self._archive(show_id, event)
        return events

    def _archive(self, show_id: int, event: Event) -> None:
        if event.type not in EPHEMERAL_TYPES and "to" not in event.data:
            self._pending.append(
                ShowEvent(
                    show_id=show_id,
                    seq=event.seq,
                    type=event.type,
                    data=jsonwire.dumps(event.data),
                    at=datetime.fromtimestamp(event.ts_ms / 1000, UTC),
                )
            )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._flush_forever(), name="showlog-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            await run_in_threadpool(self._insert, batch)
        except IntegrityError:
            # One event whose (show, seq) is already stored must not hold back the others: store them
            # one by one and drop only the duplicates.
            retry = await run_in_threadpool(self._insert_each, batch)
            self._requeue(retry)
        except Exception:
            # The database is away: keep them for the next flush rather than lose a sale from the replay.
            log.exception("archiving %d show events failed; will retry", len(batch))
            self._requeue(batch)

    def _requeue(self, events: list[ShowEvent]) -> None:
        self._pending[:0] = events
        if len(self._pending) > MAX_PENDING:
            dropped = len(self._pending) - MAX_PENDING
            del self._pending[:dropped]
            log.error("show event archive is %d events behind; dropped the %d oldest", MAX_PENDING, dropped)

    def _insert(self, batch: list[ShowEvent]) -> None:
        # Plain rows, not ORM objects: this runs in a thread beside a busy event loop, where every
        # bytecode waits for the GIL.
        rows = [
            {"show_id": e.show_id, "seq": e.seq, "type": e.type, "data": e.data, "at": e.at} for e in batch
        ]
        with self.db.session() as session:
            bulk_insert(session, table_of(ShowEvent), rows)
            session.commit()

    def _insert_each(self, batch: list[ShowEvent]) -> list[ShowEvent]:
        """Insert event by event; returns the events that failed for a reason other than a duplicate."""
        failed: list[ShowEvent] = []
        for index, event in enumerate(batch):
            fresh = ShowEvent(
                show_id=event.show_id, seq=event.seq, type=event.type, data=event.data, at=event.at
            )
            try:
                self._insert([fresh])
            except IntegrityError:
                log.warning("show %s event %s is archived already; dropped", event.show_id, event.seq)
            except Exception:
                log.exception("archiving show events failed; will retry")
                failed.extend(batch[index:])
                break
        return failed

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()

    def archived(self, show_id: int, after_seq: int = 0, limit: int = 10_000) -> list[ShowEvent]:
        with self.db.session() as session:
            return list(archived_events(session, show_id, after_seq, limit))


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
