"""Every server process's load, shared so a viewer can be sent where there is room.

Each process publishes a ``ProcessLoad`` about once a second: the URL browsers reach it at
(``Settings.advertised_url``), its viewers, whether it takes one more (its headroom verdict, and why
not), the shows whose media it holds, and when it wrote this. A record lives ``ttl`` seconds unless
refreshed, so a process that died drops out on its own. Readers (the WHEP route, edges choosing a
process) ask ``live()`` for every process's latest record.

Two adapters behind one port, chosen by the bus URL: ``RedisLoadRecords`` (a key per process with a
TTL, named in a set so readers need no SCAN) and ``MemoryLoadRecords`` (one process, the memory bus).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from liveshow.bus import is_redis_url
from liveshow.redisconn import connect


@dataclasses.dataclass(frozen=True)
class ProcessLoad:
    process: str  # the process's token (unique per process start)
    url: str
    viewers: int
    admit: bool
    reason: str  # "ok", or which limit refuses (liveshow/media/headroom.py)
    shows: tuple[int, ...]
    updated_at: float  # the writer's wall clock (seconds since the epoch)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> ProcessLoad | None:
        """The record, or None when it is not one (a foreign or damaged value is skipped, not fatal)."""
        try:
            data: Any = json.loads(raw)
            return cls(
                process=str(data["process"]),
                url=str(data["url"]),
                viewers=int(data["viewers"]),
                admit=bool(data["admit"]),
                reason=str(data["reason"]),
                shows=tuple(int(s) for s in data["shows"]),
                updated_at=float(data["updated_at"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


class LoadRecords(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, load: ProcessLoad) -> None:
        """Write (or refresh) this process's record; it expires ``ttl`` seconds later."""

    async def withdraw(self, process: str) -> None:
        """Remove a process's record at once (a clean shutdown)."""

    async def live(self) -> list[ProcessLoad]:
        """Every process's latest unexpired record, in no particular order."""


class RedisLoadRecords:
    def __init__(self, redis_url: str, prefix: str, ttl: float) -> None:
        self.redis: Any = connect(redis_url)
        self.prefix = prefix
        self.ttl_ms = max(1, int(ttl * 1000))
        self._index = f"{prefix}:load:processes"

    def _key(self, process: str) -> str:
        return f"{self.prefix}:load:{process}"

    async def start(self) -> None:
        await self.redis.ping()

    async def stop(self) -> None:
        await self.redis.aclose()

    async def publish(self, load: ProcessLoad) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(load.process), load.to_json(), px=self.ttl_ms)
            pipe.sadd(self._index, load.process)
            await pipe.execute()

    async def withdraw(self, process: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(process))
            pipe.srem(self._index, process)
            await pipe.execute()

    async def live(self) -> list[ProcessLoad]:
        processes = sorted(await self.redis.smembers(self._index))
        if not processes:
            return []
        values = await self.redis.mget([self._key(p) for p in processes])
        # A name whose record expired is a process that stopped refreshing: take it off the index.
        # (A process that refreshes right after re-adds itself: SADD in the same transaction.)
        gone = [p for p, v in zip(processes, values, strict=True) if v is None]
        if gone:
            await self.redis.srem(self._index, *gone)
        loads = [ProcessLoad.from_json(v) for v in values if v is not None]
        return [load for load in loads if load is not None]


class MemoryLoadRecords:
    """The twin of RedisLoadRecords for one process (memory bus); ``clock`` is injectable for tests."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._records: dict[str, tuple[ProcessLoad, float]] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._records.clear()

    async def publish(self, load: ProcessLoad) -> None:
        self._records[load.process] = (load, self.clock() + self.ttl)

    async def withdraw(self, process: str) -> None:
        self._records.pop(process, None)

    async def live(self) -> list[ProcessLoad]:
        now = self.clock()
        for process in [p for p, (_, until) in self._records.items() if until <= now]:
            del self._records[process]
        return [load for load, _ in self._records.values()]


def make_load_records(bus_url: str, prefix: str, ttl: float) -> LoadRecords:
    if is_redis_url(bus_url):
        return RedisLoadRecords(bus_url, prefix, ttl)
    return MemoryLoadRecords(ttl)


def with_headroom(
    loads: list[ProcessLoad], now: float, max_age: float, exclude: str | None = None
) -> list[ProcessLoad]:
    """The processes that take a viewer now, least loaded first (viewers, then those already holding
    fewer shows; ties by process for a stable order). A record older than ``max_age`` seconds by the
    reader's wall clock ``now`` is skipped (its process may be stuck even if its key has not expired
    yet), and so is ``exclude`` (the asking process)."""
    fresh = [
        load for load in loads if load.admit and load.process != exclude and now - load.updated_at <= max_age
    ]
    return sorted(fresh, key=lambda load: (load.viewers, len(load.shows), load.process))
