"""The in-process bus: the default when one server process serves everything."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from liveshow.bus.base import Event, Subscription
from liveshow.clock import wall_ms


class MemoryBus:
    def __init__(self, retain: int = 5000) -> None:
        self.retain = retain
        self._logs: dict[str, deque[Event]] = {}
        self._seqs: dict[str, int] = {}
        self._subs: dict[str, set[Subscription]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()

    async def ping(self) -> bool:
        return True

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> Event:
        # No await between numbering and appending: the event loop makes this atomic.
        seq = self._seqs.get(topic, 0) + 1
        self._seqs[topic] = seq
        event = Event(topic=topic, seq=seq, type=type, data=data, ts_ms=wall_ms())
        self._logs.setdefault(topic, deque(maxlen=self.retain)).append(event)
        for sub in self._subs.get(topic, ()):
            sub.queue.put_nowait(event)
        return event

    async def publish_many(self, topic: str, items: list[tuple[str, dict[str, Any]]]) -> list[Event]:
        return [await self.publish(topic, type_, data) for type_, data in items]

    def subscribe(self, topic: str, after_seq: int | None = None) -> Subscription:
        sub = Subscription(topic=topic, queue=asyncio.Queue())
        if after_seq is not None:
            for event in self._logs.get(topic, ()):
                if event.seq > after_seq:
                    sub.queue.put_nowait(event)
        self._subs.setdefault(topic, set()).add(sub)
        sub._on_close.append(lambda s: self._subs.get(topic, set()).discard(s))
        return sub

    async def history(self, topic: str, after_seq: int, limit: int = 1000) -> list[Event] | None:
        log = self._logs.get(topic)
        last = self._seqs.get(topic, 0)
        if after_seq >= last:
            return []
        if log is None or log[0].seq > after_seq + 1:
            return None
        return [e for e in log if e.seq > after_seq][:limit]

    def seed(self, topic: str, seq: int) -> None:
        """Continue numbering after ``seq`` (numbers a previous run of the process gave out)."""
        if self._seqs.get(topic, 0) < seq:
            self._seqs[topic] = seq

    async def last_seq(self, topic: str) -> int:
        return self._seqs.get(topic, 0)
