"""The in-process bus: the default when one server process serves everything."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from liveshow.bus.base import SEQ_BLOCK, DurableLog, Event, Subscription
from liveshow.clock import wall_ms

log = logging.getLogger(__name__)


class MemoryBus:
    """Numbers live in this process. With a durable log, a topic's numbers come from blocks reserved
    there first, so a restarted process continues above every number its previous run gave out
    (archived or not: presence counts and private notices are numbered too)."""

    def __init__(self, retain: int = 5000, durable: DurableLog | None = None, block: int = SEQ_BLOCK) -> None:
        self.retain = retain
        self.durable = durable
        self.block = block
        self._logs: dict[str, deque[Event]] = {}
        self._seqs: dict[str, int] = {}
        self._ceilings: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._ahead: dict[str, asyncio.Task[None]] = {}
        self._subs: dict[str, set[Subscription]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for task in list(self._ahead.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()

    async def ping(self) -> bool:
        return True

    def _room(self, topic: str, count: int) -> bool:
        """Whether ``count`` more numbers may be handed out now without asking the durable log."""
        if self.durable is None:
            return True
        ceiling = self._ceilings.get(topic)
        return ceiling is not None and self._seqs.get(topic, 0) + count <= ceiling

    async def _reserve(self, topic: str, count: int) -> None:
        assert self.durable is not None
        async with self._locks.setdefault(topic, asyncio.Lock()):
            if self._room(topic, count):
                return
            block = max(self.block, count)
            ceiling = await self.durable.reserve(topic, self._seqs.get(topic, 0), block)
            if topic not in self._ceilings:
                # First use in this run: whatever an earlier run handed out is at most ceiling - block.
                self._seqs[topic] = max(self._seqs.get(topic, 0), ceiling - block)
            self._ceilings[topic] = max(self._ceilings.get(topic, 0), ceiling)

    def _reserve_ahead(self, topic: str) -> None:
        """Past half of the block, reserve the next one in the background, so no publish waits."""
        ceiling = self._ceilings.get(topic)
        if self.durable is None or ceiling is None or ceiling - self._seqs.get(topic, 0) > self.block // 2:
            return
        task = self._ahead.get(topic)
        if task is not None and not task.done():
            return

        async def ahead() -> None:
            try:
                await self._reserve(topic, self.block // 2 + 1)
            except Exception as exc:  # the next publish past the ceiling asks again and reports
                log.warning("reserving sequence numbers for %s ahead failed: %s", topic, exc)

        self._ahead[topic] = asyncio.get_running_loop().create_task(ahead())

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> Event:
        return (await self.publish_many(topic, [(type, data)]))[0]

    async def publish_many(self, topic: str, items: list[tuple[str, dict[str, Any]]]) -> list[Event]:
        while not self._room(topic, len(items)):
            await self._reserve(topic, len(items))
        # No await from the check above to the last append: the event loop makes numbering and
        # appending atomic, and the numbers stay under the reserved ceiling.
        events = [self._append(topic, type_, data) for type_, data in items]
        self._reserve_ahead(topic)
        return events

    def _append(self, topic: str, type: str, data: dict[str, Any]) -> Event:
        seq = self._seqs.get(topic, 0) + 1
        self._seqs[topic] = seq
        event = Event(topic=topic, seq=seq, type=type, data=data, ts_ms=wall_ms())
        self._logs.setdefault(topic, deque(maxlen=self.retain)).append(event)
        for sub in self._subs.get(topic, ()):
            sub.queue.put_nowait(event)
        return event

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
        log_ = self._logs.get(topic)
        last = await self.last_seq(topic)
        if after_seq >= last:
            return []
        if log_ is None or log_[0].seq > after_seq + 1:
            return None
        return [e for e in log_ if e.seq > after_seq][:limit]

    async def last_seq(self, topic: str) -> int:
        """The topic's last number. A topic this run has not numbered yet reserves first, so a client
        resuming after a restart is placed at or above every number it may have seen."""
        if not self._room(topic, 0):
            await self._reserve(topic, 0)
        return self._seqs.get(topic, 0)
