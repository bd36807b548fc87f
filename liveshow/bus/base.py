"""The bus protocol shared by both adapters.

A topic (one per show, e.g. ``show:12``) is an ordered log: ``publish`` gives each event the next
sequence number of its topic, keeps the last ``retain`` events for gap recovery and hands the event
to every subscriber in every process, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from liveshow import jsonwire


def event_body(type: str, data: dict[str, Any], ts_ms: int) -> str:
    """An event as stored on the bus: its topic and seq are where it is stored, not in it."""
    return jsonwire.dumps({"type": type, "data": data, "ts": ts_ms})


@dataclass(frozen=True)
class Event:
    topic: str
    seq: int
    type: str
    data: dict[str, Any]
    ts_ms: int

    @classmethod
    def from_json(cls, topic: str, seq: int, raw: str | bytes) -> Event:
        body = jsonwire.loads(raw)
        return cls(topic=topic, seq=seq, type=body["type"], data=body["data"], ts_ms=body["ts"])

    def wire(self) -> dict[str, Any]:
        """The frame a client sees: the event's own fields plus its place in the show's log."""
        return {"type": self.type, "seq": self.seq, "ts": self.ts_ms, **self.data}


@dataclass(eq=False)
class Subscription:
    """Events of one topic from the moment of subscribing; iterate, then close."""

    topic: str
    queue: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    closed: bool = False
    _on_close: list[Any] = field(default_factory=list)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Event]:
        while not self.closed:
            yield await self.queue.get()

    async def get(self, timeout: float | None = None) -> Event:
        return await asyncio.wait_for(self.queue.get(), timeout)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for callback in self._on_close:
                callback(self)


# Numbers a bus reserves at a time in the durable log (see DurableLog.reserve). Larger means fewer
# database writes; a loss of the fast path skips at most this many numbers.
SEQ_BLOCK = 1000


class DurableLog(Protocol):
    """What a bus needs from the database, the authority over a topic's numbering and events.

    The bus package receives it (it never imports the database); liveshow.seqstore implements it."""

    async def reserve(self, topic: str, floor: int, block: int) -> int:
        """Raise the topic's ceiling by ``block`` (from at least ``floor``) and return the new one, C.

        Every number handed out before this call is at most ``C - block`` (it was under the old
        ceiling); the caller may hand out numbers up to C."""
        ...

    async def archived(self, topic: str, after_seq: int, before_seq: int | None) -> list[Event]:
        """Archived events of the topic with after_seq < seq < before_seq (None: no upper bound)."""
        ...


class Bus(Protocol):
    retain: int

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> Event: ...

    async def publish_many(self, topic: str, items: list[tuple[str, dict[str, Any]]]) -> list[Event]:
        """Publish several events of one topic in one go, numbered in the order given."""
        ...

    def subscribe(self, topic: str, after_seq: int | None = None) -> Subscription:
        """Events of the topic after after_seq (default: from now). A topic has one reader per
        process, so a later subscriber joins at the reader's position: dedupe by seq."""
        ...

    async def history(self, topic: str, after_seq: int, limit: int = 1000) -> list[Event] | None:
        """Events with seq > after_seq, oldest first; None when some of them are no longer kept."""
        ...

    async def last_seq(self, topic: str) -> int: ...
