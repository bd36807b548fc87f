"""The Redis bus: each topic is a counter plus a Stream whose entry ids are the sequence numbers.

Numbering and appending happen in one Lua script, so every process sees one order per topic. Each
process reads the streams it has subscribers for with blocking XREAD and fans out locally.

Redis is a fast path that may restart empty at any time; the database is the authority (DurableLog).
With one, the counter never passes a ceiling kept beside it, which is raised only after the database
reserved the numbers below it. A counter that is gone (Redis restarted empty) is set again from a
fresh reservation, above every number handed out before, so numbering never goes backwards and no
reader's position is ahead of the new events. A reader that lost Redis fills the events it may have
missed from the database's archive before it delivers the new ones.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis

from liveshow.bus.base import SEQ_BLOCK, DurableLog, Event, Subscription, event_body
from liveshow.clock import wall_ms
from liveshow.redisconn import connect
from liveshow.resp import RespConnection, Script

log = logging.getLogger(__name__)

# Both number and append a batch of events in one call: KEYS seq, log [, ceiling]; ARGV retain, then
# the events in order. One call per batch rather than one per event in a pipeline: the readers wake
# once for the batch (Redis serves blocked XREADs after each command), and no pipeline means no
# SCRIPT EXISTS round trip (redis-py asks before every pipeline that holds a script).
# Returns {first seq, how many were numbered, numbers left under the ceiling}.
_PUBLISH = """
local n = #ARGV - 1
local last = redis.call('INCRBY', KEYS[1], n)
for i = 1, n do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], (last - n + i) .. '-0', 'e', ARGV[i + 1])
end
return {last - n + 1, n, 0}
"""
# With a durable log the counter never passes the ceiling: events are numbered in order until it is
# reached, and the rest are left unnumbered (the caller reserves and sends them again). {-1, 0, 0} when
# the counter is gone (Redis restarted empty); a refusal changes nothing.
_PUBLISH_FENCED = """
local last = redis.call('GET', KEYS[1])
if not last then return {-1, 0, 0} end
local seq = tonumber(last)
local ceiling = tonumber(redis.call('GET', KEYS[3]) or '0')
local n = math.min(#ARGV - 1, math.max(0, ceiling - seq))
for i = 1, n do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], (seq + i) .. '-0', 'e', ARGV[i + 1])
end
if n > 0 then redis.call('SET', KEYS[1], seq + n) end
return {seq + 1, n, ceiling - seq - n}
"""
# After a reservation: KEYS seq, ceiling; ARGV start (the reservation's floor), ceiling. A counter that
# exists is never moved back (another process set it from its own, as fresh, reservation); the ceiling
# only rises.
_SET_RESERVED = """
if not redis.call('GET', KEYS[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
end
return 1
"""
# How long a reader that lost Redis gives the other processes to archive what they published before
# the loss (their archive flushes every 0.2 s) before it reads the archive for what it missed.
BACKFILL_GRACE_S = 1.0
BACKFILL_TRIES = 10  # reading that gap from the archive, a second apart (the database may be down too)


class RedisBus:
    def __init__(
        self,
        url: str,
        retain: int = 5000,
        prefix: str = "liveshow",
        durable: DurableLog | None = None,
        block: int = SEQ_BLOCK,
    ) -> None:
        self.retain = retain
        self.prefix = prefix
        self.durable = durable
        self.block = block
        self._redis = connect(url)
        # Publishing is a hot loop (a batch of a show's decisions a few hundred times a second): on a
        # lean connection of its own (resp.py); the rest stays on redis-py.
        self._publisher = RespConnection(url)
        self._script = Script(_PUBLISH_FENCED if durable is not None else _PUBLISH)
        self._set_reserved = self._redis.register_script(_SET_RESERVED)
        self._url = url
        self._subs: dict[str, set[Subscription]] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._reserving: dict[str, asyncio.Task[None]] = {}
        self._closing = False

    @property
    def redis(self) -> aioredis.Redis:
        return self._redis

    def _seq_key(self, topic: str) -> str:
        return f"{self.prefix}:{topic}:seq"

    def _log_key(self, topic: str) -> str:
        return f"{self.prefix}:{topic}:log"

    def _ceiling_key(self, topic: str) -> str:
        return f"{self.prefix}:{topic}:ceiling"

    async def start(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        self._closing = True
        pending = set(self._readers.values()) | set(self._reserving.values())
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
        await self._publisher.close()

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:
            return False

    # ------------------------------------------------------------ numbering

    async def _reserve(self, topic: str) -> None:
        """Reserve a block in the database and hand it to Redis (the counter set if it is gone).

        One reservation at a time per topic in this process: every publish waiting on it shares it."""
        task = self._reserving.get(topic)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._reserve_once(topic))
            self._reserving[topic] = task
        await asyncio.shield(task)

    async def _reserve_once(self, topic: str) -> None:
        assert self.durable is not None
        raw = await self._redis.get(self._seq_key(topic))
        floor = int(raw) if raw is not None else 0
        ceiling = await self.durable.reserve(topic, floor, self.block)
        start = ceiling - self.block
        await self._set_reserved(keys=[self._seq_key(topic), self._ceiling_key(topic)], args=[start, ceiling])
        if raw is None:
            log.warning("numbering of %s starts above %d (Redis had no counter)", topic, start)

    def _reserve_ahead(self, topic: str) -> None:
        """Past half of a block, reserve the next one in the background, so no publish waits on it."""
        task = self._reserving.get(topic)
        if task is None or task.done():
            self._reserving[topic] = asyncio.get_running_loop().create_task(self._reserve_quietly(topic))

    async def _reserve_quietly(self, topic: str) -> None:
        try:
            await self._reserve_once(topic)
        except Exception as exc:  # the next publish past the ceiling asks again and reports it
            log.warning("reserving numbers for %s ahead failed: %s", topic, exc)

    async def publish(self, topic: str, type: str, data: dict[str, Any]) -> Event:
        return (await self.publish_many(topic, [(type, data)]))[0]

    async def publish_many(self, topic: str, items: list[tuple[str, dict[str, Any]]]) -> list[Event]:
        """One script call for many events: Redis numbers them in the order given, together
        (separate concurrent publishes could interleave in any order).

        With a durable log, the events the script did not number (no counter, or the ceiling reached)
        are published again after a reservation; those numbered keep their numbers."""
        if not items:
            return []
        keys = [self._seq_key(topic), self._log_key(topic)]
        if self.durable is not None:
            keys.append(self._ceiling_key(topic))
        stamped: list[tuple[str, dict[str, Any], int, str]] = []
        for type_, data in items:
            ts = wall_ms()
            stamped.append((type_, data, ts, event_body(type_, data, ts)))
        events: list[Event] = []
        for _attempt in range(5):
            answer: Any = await self._publisher.run(
                self._script, keys, [self.retain, *[b for *_s, b in stamped]]
            )
            first, numbered, left = (int(x) for x in answer)
            events.extend(
                Event(topic=topic, seq=first + i, type=type_, data=data, ts_ms=ts)
                for i, (type_, data, ts, _body) in enumerate(stamped[:numbered])
            )
            if numbered == len(stamped):
                if self.durable is not None and left <= self.block // 2:
                    self._reserve_ahead(topic)
                return events
            # The counter is gone (nothing numbered) or the ceiling was reached part way: the rest
            # waits for a fresh reservation.
            stamped = stamped[numbered:]
            await self._reserve(topic)
        raise ConnectionError(f"could not number events of {topic}: the reserved numbers ran out")

    # ------------------------------------------------------------ reading

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

    def _deliver(self, topic: str, event: Event) -> None:
        for sub in list(self._subs.get(topic, ())):
            sub.queue.put_nowait(event)

    async def _read(self, topic: str, after_seq: int | None) -> None:
        # A reply late past the block time by 25 s is a Redis in trouble: the connection is dropped
        # and the reader goes on ("nothing yet"), on a fresh one.
        conn = RespConnection(self._url, timeout=25)
        lost_at: float | None = None  # when this reader last lost Redis, until it has filled the gap
        loop = asyncio.get_running_loop()
        try:
            if after_seq is None:
                after_seq = int(await conn.call("GET", self._seq_key(topic)) or 0)
            last = after_seq
            while not self._closing:
                try:
                    block = 5000 if lost_at is None else 200
                    entries = await conn.xread(self._log_key(topic), f"{last}-0", count=500, block_ms=block)
                except aioredis.TimeoutError:
                    self._raise_if_cancelled()
                    continue
                except (ConnectionError, OSError, aioredis.ConnectionError) as exc:
                    self._raise_if_cancelled()
                    log.warning("bus reader for %s lost Redis: %s; retrying", topic, exc)
                    lost_at = loop.time()
                    await asyncio.sleep(0.5)
                    continue
                if lost_at is not None and self.durable is not None:
                    # What was published before the loss and not read here yet is gone from Redis;
                    # the archive has it (every public event): deliver it first, in order.
                    if loop.time() - lost_at < BACKFILL_GRACE_S and not entries:
                        continue
                    await asyncio.sleep(max(0.0, lost_at + BACKFILL_GRACE_S - loop.time()))
                    first_new = int(entries[0][0].split("-")[0]) if entries else None
                    missed = await self._archived(topic, last, first_new)
                    for event in missed:
                        last = event.seq
                        self._deliver(topic, event)
                    lost_at = None
                elif lost_at is not None:
                    lost_at = None
                for entry_id, fields in entries:
                    event = Event.from_json(topic, int(entry_id.split("-")[0]), fields["e"])
                    if event.seq <= last:
                        continue
                    last = event.seq
                    self._deliver(topic, event)
        finally:
            await conn.close()

    async def _archived(self, topic: str, after_seq: int, before_seq: int | None) -> list[Event]:
        """The archive's events in the gap; the database may be away too: try for a few seconds."""
        assert self.durable is not None
        for attempt in range(BACKFILL_TRIES):
            try:
                return await self.durable.archived(topic, after_seq, before_seq)
            except Exception as exc:
                log.warning(
                    "bus reader for %s could not read the archive (try %d): %s", topic, attempt + 1, exc
                )
                await asyncio.sleep(1.0)
        log.error("bus reader for %s gave up filling the gap after seq %d from the archive", topic, after_seq)
        return []

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
        if raw is None and self.durable is not None:
            # Redis restarted empty (or the topic is new): set the counter from a fresh reservation,
            # so a client resuming is placed at or above every number it may have seen.
            await self._reserve(topic)
            raw = await self._redis.get(self._seq_key(topic))
        return int(raw or 0)
