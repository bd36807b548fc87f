"""Which server process owns a show's publisher, shared by every process (Redis) or kept in memory.

A viewer may reach any process, but the encoded media of a show enters through the process whose
publisher it is. That process registers itself under ``{prefix}:media:{show_id}:owner`` with its
advertised base URL and a TTL it refreshes while it holds the show (``publishing``, or
``reconnecting`` during the grace period); other processes pull the show from there to serve their
own viewers (``edges``; or redirect WHEP there when they have no headroom) and refuse a second WHIP
publisher with 409. A republish arriving on another process during the grace period takes the
show over (the old owner notices on its next refresh and lets go). Ending a show from any process marks
the key ``ended`` so the owner stops its publisher. The value is ``token<TAB>state<TAB>url``.

With the memory bus there is one process: ``MemoryOwners`` keeps the same rules in a dict, so nothing
is ever redirected.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Protocol

from liveshow.bus import is_redis_url
from liveshow.redisconn import connect

PUBLISHING = "publishing"
RECONNECTING = "reconnecting"
ENDED = "ended"

_CLAIM = """
local v = redis.call('GET', KEYS[1])
if v then
  local tok, st = string.match(v, '^([^\t]*)\t([^\t]*)\t')
  if tok ~= ARGV[1] and not (ARGV[4] == '1' and st == 'reconnecting') then return v end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return false
"""
_UPDATE = """
local v = redis.call('GET', KEYS[1])
if v and string.match(v, '^([^\t]*)\t') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
_RELEASE = """
local v = redis.call('GET', KEYS[1])
if v and string.match(v, '^([^\t]*)\t') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


class Owners(Protocol):
    token: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def claim(self, show_id: int, state: str, takeover: bool) -> str | None:
        """Hold the show in ``state``; None when it is ours now, else the holder's raw value."""

    async def update(self, show_id: int, state: str) -> bool:
        """Refresh our hold (re-taking an expired key); False when another process holds the show."""

    async def owner_url(self, show_id: int) -> str | None:
        """The base URL of another process holding the show's publisher, or None."""

    async def holder(self, show_id: int) -> tuple[str, str] | None:
        """(base URL, ``publishing`` | ``reconnecting``) of another process holding the show, or None."""

    async def release(self, show_id: int) -> None: ...

    async def mark_ended(self, show_id: int) -> None: ...


def parse(value: str | None) -> tuple[str, str, str] | None:
    if not value:
        return None
    token, state, url = [*value.split("\t", 2), "", ""][:3]
    return token, state, url


class _Base:
    def __init__(self, url: str, ttl: float) -> None:
        self.token = uuid.uuid4().hex
        self.url = url.rstrip("/")
        self.ttl_ms = max(1, int(ttl * 1000))

    def _value(self, state: str) -> str:
        return f"{self.token}\t{state}\t{self.url}"

    def _foreign(self, value: str | None) -> tuple[str, str] | None:
        held = parse(value)
        if held is None or held[0] == self.token or held[1] == ENDED or not held[2]:
            return None
        return held[2], held[1]

    def _foreign_url(self, value: str | None) -> str | None:
        foreign = self._foreign(value)
        return foreign[0] if foreign is not None else None


class RedisOwners(_Base):
    def __init__(self, redis_url: str, prefix: str, url: str, ttl: float) -> None:
        super().__init__(url, ttl)
        self.prefix = prefix
        self.redis: Any = connect(redis_url)
        self._claim = self.redis.register_script(_CLAIM)
        self._update = self.redis.register_script(_UPDATE)
        self._release = self.redis.register_script(_RELEASE)

    def _key(self, show_id: int) -> str:
        return f"{self.prefix}:media:{show_id}:owner"

    async def start(self) -> None:
        await self.redis.ping()

    async def stop(self) -> None:
        await self.redis.aclose()

    async def claim(self, show_id: int, state: str, takeover: bool) -> str | None:
        args: list[str | int] = [self.token, self._value(state), self.ttl_ms, "1" if takeover else "0"]
        held = await self._claim(keys=[self._key(show_id)], args=args)
        return str(held) if held else None

    async def update(self, show_id: int, state: str) -> bool:
        done = await self._update(
            keys=[self._key(show_id)], args=[self.token, self._value(state), self.ttl_ms]
        )
        return bool(done)

    async def owner_url(self, show_id: int) -> str | None:
        return self._foreign_url(await self.redis.get(self._key(show_id)))

    async def holder(self, show_id: int) -> tuple[str, str] | None:
        return self._foreign(await self.redis.get(self._key(show_id)))

    async def release(self, show_id: int) -> None:
        await self._release(keys=[self._key(show_id)], args=[self.token])

    async def mark_ended(self, show_id: int) -> None:
        await self.redis.set(self._key(show_id), f"\t{ENDED}\t", px=self.ttl_ms)


class MemoryOwners(_Base):
    """The same rules for one process (memory bus): the twin of RedisOwners."""

    def __init__(self, url: str, ttl: float) -> None:
        super().__init__(url, ttl)
        self._held: dict[int, tuple[str, float]] = {}

    def _get(self, show_id: int) -> str | None:
        entry = self._held.get(show_id)
        if entry is None or entry[1] < time.monotonic():
            self._held.pop(show_id, None)
            return None
        return entry[0]

    def _set(self, show_id: int, value: str) -> None:
        self._held[show_id] = (value, time.monotonic() + self.ttl_ms / 1000)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._held.clear()

    async def claim(self, show_id: int, state: str, takeover: bool) -> str | None:
        value = self._get(show_id)
        held = parse(value)
        if held is not None and held[0] != self.token and not (takeover and held[1] == RECONNECTING):
            return value
        self._set(show_id, self._value(state))
        return None

    async def update(self, show_id: int, state: str) -> bool:
        held = parse(self._get(show_id))
        if held is not None and held[0] != self.token:
            return False
        self._set(show_id, self._value(state))
        return True

    async def owner_url(self, show_id: int) -> str | None:
        return self._foreign_url(self._get(show_id))

    async def holder(self, show_id: int) -> tuple[str, str] | None:
        return self._foreign(self._get(show_id))

    async def release(self, show_id: int) -> None:
        held = parse(self._get(show_id))
        if held is not None and held[0] == self.token:
            self._held.pop(show_id, None)

    async def mark_ended(self, show_id: int) -> None:
        self._set(show_id, f"\t{ENDED}\t")


def make_owners(bus_url: str, prefix: str, advertise_url: str, ttl: float) -> Owners:
    if is_redis_url(bus_url):
        return RedisOwners(bus_url, prefix, advertise_url, ttl)
    return MemoryOwners(advertise_url, ttl)
