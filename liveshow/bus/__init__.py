"""The bus: per-topic sequenced event logs with fan-out, in memory or on Redis Streams."""

from liveshow.bus.base import Bus, Event, Subscription
from liveshow.bus.factory import is_redis_url, make_bus

__all__ = ["Bus", "Event", "Subscription", "is_redis_url", "make_bus"]
