"""Pick the bus adapter from its URL."""

from __future__ import annotations

from liveshow.bus.base import Bus, DurableLog


def is_redis_url(url: str) -> bool:
    """Whether a bus URL names Redis: then the processes share it, and everything that must be one
    across them (auction writer, presence, media owners, chat limits) uses Redis too."""
    return url.startswith(("redis://", "rediss://", "unix://"))


def make_bus(url: str, prefix: str = "liveshow", durable: DurableLog | None = None) -> Bus:
    """The bus for a URL. ``durable`` (the database's side of numbering, liveshow.seqstore) makes
    numbering survive a restart of the process or of Redis; a server always passes it."""
    if url.startswith("memory://"):
        from liveshow.bus.memory import MemoryBus

        return MemoryBus(durable=durable)
    if is_redis_url(url):
        from liveshow.bus.redis import RedisBus

        return RedisBus(url, prefix=prefix, durable=durable)
    raise ValueError(f"unsupported bus URL {url!r}: use memory:// or redis://host:port/db")
