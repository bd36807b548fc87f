"""The Redis bus: each topic is a counter plus a Stream whose entry ids are the sequence numbers.

Numbering and appending happen in one Lua script, so every process sees one order per topic. Each
process reads the streams it has subscribers for with blocking XREAD and fans out locally.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis

from liveshow.bus.base import Event, Subscription, event_body
from liveshow.clock import wall_ms
from liveshow.redisconn import connect

log = logging.getLogger(__name__)

_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'e', ARGV[1])
return seq
"""


class RedisBus:
    def __init__(self, url: str, retain: int = 5000, prefix: str = "liveshow") -> None:
        self.retain = retain
        self.prefix = prefix
        self._redis = connect(url)
        self._script = self._redis.register_script(_PUBLISH)
        self._url = url
        self._subs: dict[str, set[Subscription]] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._closing = False

    @property
    def redis(self) -> aioredis.Redis:
        return self._redis

    def _seq_key(self, topic: str) -> str:
        return f"{self.prefix}:{topic}:seq"

    def _log_key(self, topic: str) -> str:
        return f"{self.prefix}:{topic}:log"

    async def start(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        self._closing = True
        pending = set(self._readers.values())
        self._readers.clear()
        # redis-py can turn a cancellation inside a blocking read into a connection error, which the
        # reader then retries: cancel until every reader is really gone, never wait on one for ever.
        while pending:
            for task in pending:
                task.cancel()
            _done, pending = await asyncio.wait(pending, timeout=1.0)
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()
        await self._redis.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:
            return False

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> Event:
        ts = wall_ms()
        body = event_body(type, data, ts)
        seq = int(
            await self._script(keys=[self._seq_key(topic), self._log_key(topic)], args=[body, self.retain])
        )
        return Event(topic=topic, seq=seq, type=type, data=data, ts_ms=ts)

    async def publish_many(self, topic: str, items: list[tuple[str, dict[str, Any]]]) -> list[Event]:
        """One round trip for many events: a pipeline runs on one connection, so Redis numbers them
        in the order given (separate concurrent publishes could interleave in any order)."""
        if not items:
            return []
        keys = [self._seq_key(topic), self._log_key(topic)]
        stamped = []
        pipe = self._redis.pipeline(transaction=False)
        for type_, data in items:
            ts = wall_ms()
            body = event_body(type_, data, ts)
            stamped.append((type_, data, ts))
            # Queued on the pipeline (which loads the script first if Redis lost it).
            await self._script(keys=keys, args=[body, self.retain], client=pipe)
        seqs = await pipe.execute()
        return [
            Event(topic=topic, seq=int(seq), type=type_, data=data, ts_ms=ts)
            for (type_, data, ts), seq in zip(stamped, seqs, strict=True)
        ]

    def subscribe(self, topic: str, after_seq: int | None = None) -> Subscription:
        sub = Subscription(topic=topic, queue=asyncio.Queue())
        self._subs.setdefault(topic, set()).add(sub)
        sub._on_close.append(self._unsubscribe)
        if topic not in self._readers:
            self._readers[topic] = asyncio.create_task(self._read(topic, after_seq), name=f"bus-read-{topic}")
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.topic)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[sub.topic]
            task = self._readers.pop(sub.topic, None)
            if task is not None:
                task.cancel()

    @staticmethod
    def _raise_if_cancelled() -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError

    async def _read(self, topic: str, after_seq: int | None) -> None:
        # redis-py defaults to a 5 s socket timeout, which a blocking XREAD on a quiet topic would hit:
        # give the reader room beyond its block time, and treat a timeout as "nothing yet".
        conn = aioredis.from_url(self._url, decode_responses=True, socket_timeout=30)
        try:
            if after_seq is None:
                after_seq = int(await conn.get(self._seq_key(topic)) or 0)
            last_id = f"{after_seq}-0"
            while not self._closing:
                try:
                    resp: Any = await conn.xread({self._log_key(topic): last_id}, block=5000, count=500)
                except aioredis.TimeoutError:
                    self._raise_if_cancelled()
                    continue
                except (ConnectionError, OSError, aioredis.ConnectionError) as exc:
                    self._raise_if_cancelled()
                    log.warning("bus reader for %s lost Redis: %s; retrying", topic, exc)
                    await asyncio.sleep(0.5)
                    continue
                for _key, entries in resp or []:
                    for entry_id, fields in entries:
                        last_id = entry_id
                        event = Event.from_json(topic, int(entry_id.split("-")[0]), fields["e"])
                        for sub in list(self._subs.get(topic, ())):
                            sub.queue.put_nowait(event)
        finally:
            await conn.aclose()

    async def history(self, topic: str, after_seq: int, limit: int = 1000) -> list[Event] | None:
        last = await self.last_seq(topic)
        if after_seq >= last:
            return []
        entries: Any = await self._redis.xrange(
            self._log_key(topic), min=f"{after_seq + 1}-0", max="+", count=limit
        )
        if not entries or int(entries[0][0].split("-")[0]) != after_seq + 1:
            return None
        return [Event.from_json(topic, int(eid.split("-")[0]), f["e"]) for eid, f in entries]

    async def last_seq(self, topic: str) -> int:
        raw = await self._redis.get(self._seq_key(topic))
        return int(raw or 0)
