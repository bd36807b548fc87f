"""Who is in a show, counted across server processes.

Each socket is a member (``<process>:<socket>``) with an expiry renewed by its process's heartbeat, so a
process that dies stops counting once its members expire. Two adapters behind one protocol: memory (one
process) and Redis (a sorted set of member -> expiry plus a hash of member -> viewer, per show).
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from liveshow.bus import is_redis_url
from liveshow.redisconn import connect

MEMBER_TTL_MS = 30_000
HEARTBEAT_SECONDS = 10.0


def now_ms() -> int:
    return int(time.time() * 1000)


class Presence(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def join(self, show_id: int, member: str, viewer: dict[str, Any] | None) -> None: ...

    async def leave(self, show_id: int, member: str) -> None: ...

    async def heartbeat(self, show_id: int, members: dict[str, dict[str, Any] | None]) -> None:
        """Renew every member this process holds in the show (and re-add any that expired)."""
        ...

    async def count(self, show_id: int) -> int: ...

    async def viewers(self, show_id: int) -> list[dict[str, Any] | None]:
        """One entry per live member: the signed-in viewer, or None for an anonymous one."""
        ...

    async def try_lead(self, show_id: int, owner: str, ttl_ms: int) -> bool:
        """True for one process per show per ttl: that one publishes the count, so N processes
        do not announce the same number N times."""
        ...


class MemoryPresence:
    def __init__(self) -> None:
        self._members: dict[int, dict[str, tuple[int, dict[str, Any] | None]]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._members.clear()

    async def join(self, show_id: int, member: str, viewer: dict[str, Any] | None) -> None:
        self._members.setdefault(show_id, {})[member] = (now_ms() + MEMBER_TTL_MS, viewer)

    async def leave(self, show_id: int, member: str) -> None:
        self._members.get(show_id, {}).pop(member, None)

    async def heartbeat(self, show_id: int, members: dict[str, dict[str, Any] | None]) -> None:
        expiry = now_ms() + MEMBER_TTL_MS
        room = self._members.setdefault(show_id, {})
        for member, viewer in members.items():
            room[member] = (expiry, viewer)

    def _live(self, show_id: int) -> dict[str, tuple[int, dict[str, Any] | None]]:
        room = self._members.get(show_id, {})
        now = now_ms()
        for member in [m for m, (exp, _) in room.items() if exp <= now]:
            del room[member]
        return room

    async def count(self, show_id: int) -> int:
        return len(self._live(show_id))

    async def viewers(self, show_id: int) -> list[dict[str, Any] | None]:
        return [viewer for _, viewer in self._live(show_id).values()]

    async def try_lead(self, show_id: int, owner: str, ttl_ms: int) -> bool:
        return True


# Drop expired members from both keys and count the rest, atomically.
_COUNT = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #expired > 0 then
  redis.call('ZREM', KEYS[1], unpack(expired))
  redis.call('HDEL', KEYS[2], unpack(expired))
end
return redis.call('ZCARD', KEYS[1])
"""
# A show's keys outlive their last heartbeat by this much, then Redis forgets them.
_KEY_TTL_SECONDS = 3600


class RedisPresence:
    def __init__(self, url: str, prefix: str = "liveshow") -> None:
        self.prefix = prefix
        self._redis = connect(url)
        self._count = self._redis.register_script(_COUNT)

    def _keys(self, show_id: int) -> tuple[str, str]:
        base = f"{self.prefix}:presence:{show_id}"
        return base, base + ":who"

    async def start(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()

    async def join(self, show_id: int, member: str, viewer: dict[str, Any] | None) -> None:
        await self.heartbeat(show_id, {member: viewer})

    async def leave(self, show_id: int, member: str) -> None:
        zkey, hkey = self._keys(show_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(zkey, member)
            pipe.hdel(hkey, member)
            await pipe.execute()

    async def heartbeat(self, show_id: int, members: dict[str, dict[str, Any] | None]) -> None:
        if not members:
            return
        zkey, hkey = self._keys(show_id)
        expiry = now_ms() + MEMBER_TTL_MS
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(zkey, dict.fromkeys(members, expiry))
            pipe.hset(hkey, mapping={m: json.dumps(v) for m, v in members.items()})
            pipe.expire(zkey, _KEY_TTL_SECONDS)
            pipe.expire(hkey, _KEY_TTL_SECONDS)
            await pipe.execute()

    async def count(self, show_id: int) -> int:
        zkey, hkey = self._keys(show_id)
        return int(await self._count(keys=[zkey, hkey], args=[now_ms()]))

    async def viewers(self, show_id: int) -> list[dict[str, Any] | None]:
        zkey, hkey = self._keys(show_id)
        members: Any = await self._redis.zrangebyscore(zkey, now_ms(), "+inf")
        if not members:
            return []
        raw: Any = await self._redis.hmget(hkey, members)
        out: list[dict[str, Any] | None] = []
        for item in raw:
            viewer = json.loads(item) if item else None
            out.append(viewer if isinstance(viewer, dict) else None)
        return out

    async def try_lead(self, show_id: int, owner: str, ttl_ms: int) -> bool:
        key = f"{self.prefix}:presence:{show_id}:leader"
        if await self._redis.set(key, owner, px=ttl_ms, nx=True):
            return True
        return bool(await self._redis.get(key) == owner)


def make_presence(bus_url: str, prefix: str) -> Presence:
    if is_redis_url(bus_url):
        return RedisPresence(bus_url, prefix)
    return MemoryPresence()
