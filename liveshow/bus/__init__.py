"""The bus: per-topic sequenced event logs with fan-out, in memory or on Redis Streams."""

from liveshow.bus.base import Bus, DurableLog, Event, Subscription
from liveshow.bus.factory import is_redis_url, make_bus

__all__ = ["Bus", "DurableLog", "Event", "Subscription", "is_redis_url", "make_bus"]
