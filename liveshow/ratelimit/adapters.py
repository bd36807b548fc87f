"""Where the sliding logs live: this process (``memory://`` bus, one process) or Redis (several
processes share one budget). ``make_limiter`` picks one by the bus URL, like the bus itself.

Both answer ``hit(rule, key)`` with a ``Verdict``; ``check`` raises the ``RateLimited`` refusal.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from redis.exceptions import RedisError

from liveshow.bus import is_redis_url
from liveshow.errors import DomainError
from liveshow.ratelimit.rules import ALLOWED, Rule, SlidingLog, Verdict, refusal
from liveshow.resp import RespConnection, Script

# Keys idle this long are dropped from the in-memory table (longer than any sensible window).
IDLE_SECONDS = 3600.0


class LimiterUnavailable(DomainError):
    """Redis cannot count: refuse (503 + Retry-After, an ``unavailable`` frame) rather than let a
    Redis outage switch every limit off, or answer 500."""

    code = "unavailable"
    status = 503


RETRY_UNAVAILABLE_MS = 2000


class Limiter(Protocol):
    async def hit(self, rule: Rule, key: str, slow: float = 0.0) -> Verdict: ...

    def forget_idle(self) -> None: ...

    async def close(self) -> None: ...


async def check(limiter: Limiter, rule: Rule, key: str, slow: float = 0.0) -> None:
    """Count one hit for ``key`` under ``rule``, or raise RateLimited (the hit is then not counted)."""
    verdict = await limiter.hit(rule, key, slow)
    if not verdict.allowed:
        raise refusal(rule, verdict, slow)


class MemoryLimiter:
    """The sliding logs of this process; the clock is injected so tests can move time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.logs: dict[tuple[str, str], SlidingLog] = {}

    async def hit(self, rule: Rule, key: str, slow: float = 0.0) -> Verdict:
        return self.hit_now(rule, key, slow)

    def hit_now(self, rule: Rule, key: str, slow: float = 0.0) -> Verdict:
        if rule.off and not rule.spaced:
            return ALLOWED
        log = self.logs.get((rule.name, key))
        if log is None:
            log = self.logs[(rule.name, key)] = SlidingLog()
        return log.hit(rule, self.clock(), slow)

    def forget_idle(self) -> None:
        """Drop keys with no recent hit, so the table does not grow with every visitor."""
        cutoff = self.clock() - IDLE_SECONDS
        for key in [k for k, log in self.logs.items() if log.idle_since(cutoff)]:
            del self.logs[key]

    async def close(self) -> None:
        return None


# KEYS: the hits (a sorted set scored by ms) [, the last accepted hit, kept only for slow mode].
# ARGV: window ms, limit (0: none), slow-mode ms, a unique member. On Redis's clock, so the processes'
# clocks do not matter. Returns {0, 0} when counted, {1, wait ms} in slow mode, {2, wait ms} over the
# limit (the hit is then not counted). The twin of rules.SlidingLog.hit.
_CHECK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, limit, slow = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if slow > 0 then
    local last = redis.call('GET', KEYS[2])
    if last and now - tonumber(last) < slow then
        return {1, slow - (now - tonumber(last))}
    end
end
if limit > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
    if redis.call('ZCARD', KEYS[1]) >= limit then
        local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
        return {2, tonumber(first[2]) + window - now}
    end
    redis.call('ZADD', KEYS[1], now, ARGV[4])
    redis.call('PEXPIRE', KEYS[1], window)
end
if #KEYS > 1 then
    redis.call('SET', KEYS[2], now, 'PX', 86400000)
end
return {0, 0}
"""


_CHECK_SCRIPT = Script(_CHECK)


class RedisLimiter:
    """The sliding logs shared by every process on the Redis bus, each hit decided in one script call.

    Every claim, bid and chat message is a hit (with the production limits on), so the calls go on a
    lean connection of their own (resp.py), pipelined in the order they come: through redis-py's pool
    each cost 60-90 µs of Python (docs/performance.md)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self._conn = RespConnection(url)
        self._members = (f"{secrets.token_hex(6)}-{n}" for n in itertools.count(1))

    async def hit(self, rule: Rule, key: str, slow: float = 0.0) -> Verdict:
        if rule.off and not rule.spaced:
            return ALLOWED
        base = f"{self.prefix}:limit:{rule.name}:{key}"
        keys = [base, base + ":last"] if rule.spaced or slow > 0 else [base]
        args: list[Any] = [int(rule.window * 1000), max(rule.limit, 0), int(slow * 1000), next(self._members)]
        try:
            verdict, wait_ms = await self._conn.run(_CHECK_SCRIPT, keys, args)
        except (RedisError, OSError) as exc:
            raise LimiterUnavailable(
                "Rate limits cannot be checked right now; try again shortly.",
                retry_after_ms=RETRY_UNAVAILABLE_MS,
            ) from exc
        if verdict == 0:
            return ALLOWED
        return Verdict(False, int(wait_ms) / 1000, slow=verdict == 1)

    def forget_idle(self) -> None:
        return None  # Redis expires the keys

    async def close(self) -> None:
        await self._conn.close()


def make_limiter(bus_url: str, prefix: str) -> Limiter:
    if is_redis_url(bus_url):
        return RedisLimiter(bus_url, prefix)
    return MemoryLimiter()
