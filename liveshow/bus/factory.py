"""Pick the bus adapter from its URL."""

from __future__ import annotations

from liveshow.bus.base import Bus


def make_bus(url: str, prefix: str = "liveshow") -> Bus:
    if url.startswith("memory://"):
        from liveshow.bus.memory import MemoryBus

        return MemoryBus()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from liveshow.bus.redis import RedisBus

        return RedisBus(url, prefix=prefix)
    raise ValueError(f"unsupported bus URL {url!r}: use memory:// or redis://host:port/db")
