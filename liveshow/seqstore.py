"""The database side of event numbering: blocks of sequence numbers reserved per topic, and the
archive read back for a bus reader that lost events.

A bus hands out a topic's numbers from memory or Redis, which a restart (of the process, or of Redis
with nothing on disk) forgets. Before it hands out a number above its ceiling it raises the topic's
``reserved`` row here, so after any loss numbering starts above every number already given out:
clients and readers never see a number twice, and numbering never goes backwards.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import BigInteger, Column, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel
from starlette.concurrency import run_in_threadpool

from liveshow.bus import Event
from liveshow.db import Database
from liveshow.showlog import archived_events

SHOW_TOPIC_PREFIX = "show:"


class SeqBlock(SQLModel, table=True):
    __tablename__ = "seq_blocks"

    topic: str = Field(primary_key=True, max_length=100)
    # Every number of the topic handed out so far is at most this.
    reserved: int = Field(sa_column=Column(BigInteger, nullable=False))


_RAISE = text(
    "UPDATE seq_blocks SET reserved = "
    "(CASE WHEN reserved > :floor THEN reserved ELSE :floor END) + :block WHERE topic = :topic"
)
_READ = text("SELECT reserved FROM seq_blocks WHERE topic = :topic")
_CREATE = text("INSERT INTO seq_blocks (topic, reserved) VALUES (:topic, :reserved)")


class SeqStore:
    """The bus's durable log (bus.base.DurableLog) on the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def reserve(self, topic: str, floor: int, block: int) -> int:
        return await run_in_threadpool(self._reserve, topic, floor, block)

    def _reserve(self, topic: str, floor: int, block: int) -> int:
        params = {"topic": topic, "floor": floor, "block": block}
        for _attempt in range(3):
            with self.db.session() as session:
                # One statement raises the row (a row lock on PostgreSQL, the write lock on SQLite), so
                # two processes reserving at once get two different blocks.
                if session.execute(_RAISE, params).rowcount:  # type: ignore[attr-defined]
                    reserved = int(session.execute(_READ, params).scalar_one())
                    session.commit()
                    return reserved
                try:
                    session.execute(_CREATE, {"topic": topic, "reserved": floor + block})
                    session.commit()
                    return floor + block
                except IntegrityError:
                    session.rollback()  # created meanwhile by another process: raise it instead
        raise RuntimeError(f"could not reserve sequence numbers for {topic}")

    async def archived(self, topic: str, after_seq: int, before_seq: int | None) -> list[Event]:
        """The archived events of a show topic with after_seq < seq < before_seq, oldest first."""
        if not topic.startswith(SHOW_TOPIC_PREFIX):
            return []
        show_id = int(topic.removeprefix(SHOW_TOPIC_PREFIX))

        def read() -> list[Event]:
            with self.db.session() as session:
                rows = archived_events(session, show_id, after_seq, limit=10_000)
            return [
                Event(topic, r.seq, r.type, json.loads(r.data), _ms(r.at))
                for r in rows
                if before_seq is None or r.seq < before_seq
            ]

        return await run_in_threadpool(read)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)
