"""Per-user rate limits: a sliding window (N messages per T seconds) plus slow mode (one per S seconds).

``SlidingWindow`` counts in this process (the in-process bus: one process; and reactions, limited per
socket). ``RedisSlidingWindow`` counts chat in Redis when processes share the Redis bus, so a user with
sockets on two processes gets the limit once, not twice; ``make_chat_limit`` picks one.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from liveshow.bus import is_redis_url
from liveshow.errors import RateLimited
from liveshow.redisconn import connect


def _slow_mode(seconds: float, wait: float) -> RateLimited:
    return RateLimited(
        f"Slow mode is on: one message every {seconds:g} s; wait {wait:.0f} s.", retry_after=round(wait, 1)
    )


def _too_many(limit: int, window: float, wait: float) -> RateLimited:
    return RateLimited(
        f"Too many messages: at most {limit} in {window:g} s; wait {wait:.0f} s.", retry_after=round(wait, 1)
    )


class SlidingWindow:
    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits: dict[object, deque[float]] = {}
        # The last accepted hit, kept apart because slow mode may be longer than the window.
        self._last: dict[object, float] = {}

    def check(self, key: object, slow_mode_seconds: float = 0.0) -> None:
        """Count one hit for key, or raise RateLimited (the hit is then not counted)."""
        now = self.clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        last = self._last.get(key)
        if slow_mode_seconds > 0 and last is not None and now - last < slow_mode_seconds:
            raise _slow_mode(slow_mode_seconds, slow_mode_seconds - (now - last))
        if len(hits) >= self.limit:
            raise _too_many(self.limit, self.window, hits[0] + self.window - now)
        hits.append(now)
        self._last[key] = now

    def forget_idle(self) -> None:
        """Drop keys with no hit in the window, so the table does not grow with every visitor."""
        cutoff = self.clock() - max(self.window, 600.0)
        for key in [k for k, last in self._last.items() if last <= cutoff]:
            self._hits.pop(key, None)
            del self._last[key]


class ChatLimit(Protocol):
    async def check(self, key: tuple[int, int], slow_mode_seconds: float = 0.0) -> None: ...

    def forget_idle(self) -> None: ...

    async def close(self) -> None: ...


class LocalChatLimit:
    """A SlidingWindow behind the ChatLimit interface."""

    def __init__(self, limit: int, window: float) -> None:
        self.window = SlidingWindow(limit, window)

    async def check(self, key: tuple[int, int], slow_mode_seconds: float = 0.0) -> None:
        self.window.check(key, slow_mode_seconds)

    def forget_idle(self) -> None:
        self.window.forget_idle()

    async def close(self) -> None:
        return None


# KEYS: the hits (a sorted set scored by ms), the last accepted hit. ARGV: window ms, limit, slow-mode
# ms, a unique member. On Redis's clock, so the processes' clocks do not matter. Returns {0, 0} when
# counted, {1, wait ms} in slow mode, {2, wait ms} over the limit (the hit is then not counted).
_CHECK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, limit, slow = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local last = redis.call('GET', KEYS[2])
if slow > 0 and last and now - tonumber(last) < slow then
    return {1, slow - (now - tonumber(last))}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {2, tonumber(first[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
redis.call('SET', KEYS[2], now, 'PX', 86400000)
return {0, 0}
"""


class RedisSlidingWindow:
    """The chat window shared by every process on the Redis bus, decided atomically in Redis."""

    def __init__(self, url: str, prefix: str, limit: int, window: float) -> None:
        self.prefix, self.limit, self.window = prefix, limit, window
        self._redis = connect(url)
        self._check = self._redis.register_script(_CHECK)
        self._members = (f"{secrets.token_hex(6)}-{n}" for n in itertools.count(1))

    async def check(self, key: tuple[int, int], slow_mode_seconds: float = 0.0) -> None:
        base = f"{self.prefix}:chatlimit:{key[0]}:{key[1]}"
        args: list[Any] = [
            int(self.window * 1000),
            self.limit,
            int(slow_mode_seconds * 1000),
            next(self._members),
        ]
        verdict, wait_ms = await self._check(keys=[base, base + ":last"], args=args)
        if verdict == 1:
            raise _slow_mode(slow_mode_seconds, int(wait_ms) / 1000)
        if verdict == 2:
            raise _too_many(self.limit, self.window, int(wait_ms) / 1000)

    def forget_idle(self) -> None:
        return None  # Redis expires the keys

    async def close(self) -> None:
        await self._redis.aclose()


def make_chat_limit(bus_url: str, prefix: str, limit: int = 5, window: float = 10.0) -> ChatLimit:
    if is_redis_url(bus_url):
        return RedisSlidingWindow(bus_url, prefix, limit, window)
    return LocalChatLimit(limit, window)
