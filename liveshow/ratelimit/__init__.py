"""Rate limits shared across processes: pure rules (``rules``), a memory and a Redis limiter
(``adapters``), the client address (``address``), and the app's configured limits (``service``)."""

from liveshow.ratelimit.adapters import Limiter, MemoryLimiter, RedisLimiter, check, make_limiter
from liveshow.ratelimit.rules import Rule, SlidingLog, Verdict, parse_rule, refusal, retry_after_header

__all__ = [
    "Limiter",
    "MemoryLimiter",
    "RedisLimiter",
    "Rule",
    "SlidingLog",
    "Verdict",
    "check",
    "make_limiter",
    "parse_rule",
    "refusal",
    "retry_after_header",
]
