"""Which processes are edges of a show, shared by every process (Redis) or kept in memory.

An edge announces itself under ``{prefix}:media:{show_id}:edges`` (a hash: its URL -> ``upstream<TAB>
depth<TAB>expires_ms``) while it pulls the show, refreshing the entry; a dead edge's entry runs out on
its own (each entry carries its expiry, wall-clock milliseconds, as processes may be on several
machines). Other processes read the list to pick where to pull from (``edgetree.choose_upstream``).

With the memory bus there is one process and never an edge: ``MemoryEdges`` keeps the same rules.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from liveshow.bus import is_redis_url
from liveshow.media.edgetree import EdgeEntry
from liveshow.redisconn import connect


class EdgeRegistry(Protocol):
    async def announce(self, show_id: int, entry: EdgeEntry) -> None: ...

    async def withdraw(self, show_id: int, url: str) -> None: ...

    async def edges(self, show_id: int) -> list[EdgeEntry]:
        """The show's edges whose announcement has not run out."""

    async def close(self) -> None: ...


def encode(entry: EdgeEntry, expires_ms: int) -> str:
    return f"{entry.upstream}\t{entry.depth}\t{expires_ms}"


def decode(url: str, value: str, now_ms: int) -> EdgeEntry | None:
    """The entry, or None when it ran out or is not ours to read."""
    parts = value.split("\t")
    if len(parts) != 3:
        return None
    upstream, depth, expires = parts
    try:
        if int(expires) < now_ms:
            return None
        return EdgeEntry(url=url, upstream=upstream, depth=int(depth))
    except ValueError:
        return None


class RedisEdges:
    def __init__(self, redis_url: str, prefix: str, ttl: float, now: Callable[[], float] = time.time) -> None:
        self.redis: Any = connect(redis_url)
        self.prefix = prefix
        self.ttl_ms = max(1, int(ttl * 1000))
        self.now = now

    def _key(self, show_id: int) -> str:
        return f"{self.prefix}:media:{show_id}:edges"

    async def announce(self, show_id: int, entry: EdgeEntry) -> None:
        key = self._key(show_id)
        expires = int(self.now() * 1000) + self.ttl_ms
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, entry.url, encode(entry, expires))
            pipe.pexpire(key, self.ttl_ms * 2)  # the whole hash goes when no edge is left to refresh it
            await pipe.execute()

    async def withdraw(self, show_id: int, url: str) -> None:
        await self.redis.hdel(self._key(show_id), url)

    async def edges(self, show_id: int) -> list[EdgeEntry]:
        raw: dict[Any, Any] = await self.redis.hgetall(self._key(show_id))
        now_ms = int(self.now() * 1000)
        out: list[EdgeEntry] = []
        for field, value in raw.items():
            url = field.decode() if isinstance(field, bytes) else str(field)
            text = value.decode() if isinstance(value, bytes) else str(value)
            entry = decode(url, text, now_ms)
            if entry is not None:
                out.append(entry)
        return sorted(out, key=lambda e: e.url)

    async def close(self) -> None:
        await self.redis.aclose()


class MemoryEdges:
    """The same rules in a dict (one process): the twin of RedisEdges."""

    def __init__(self, ttl: float, now: Callable[[], float] = time.time) -> None:
        self.ttl_ms = max(1, int(ttl * 1000))
        self.now = now
        self._held: dict[int, dict[str, str]] = {}

    async def announce(self, show_id: int, entry: EdgeEntry) -> None:
        expires = int(self.now() * 1000) + self.ttl_ms
        self._held.setdefault(show_id, {})[entry.url] = encode(entry, expires)

    async def withdraw(self, show_id: int, url: str) -> None:
        entries = self._held.get(show_id)
        if entries is not None:
            entries.pop(url, None)
            if not entries:
                del self._held[show_id]

    async def edges(self, show_id: int) -> list[EdgeEntry]:
        now_ms = int(self.now() * 1000)
        found = (decode(u, v, now_ms) for u, v in self._held.get(show_id, {}).items())
        return sorted((e for e in found if e is not None), key=lambda e: e.url)

    async def close(self) -> None:
        self._held.clear()


def make_edges(bus_url: str, prefix: str, ttl: float) -> EdgeRegistry:
    if is_redis_url(bus_url):
        return RedisEdges(bus_url, prefix, ttl)
    return MemoryEdges(ttl)
