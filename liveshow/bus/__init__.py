"""The bus: per-topic sequenced event logs with fan-out, in memory or on Redis Streams."""

from liveshow.bus.base import Bus, Event, Subscription
from liveshow.bus.factory import make_bus

__all__ = ["Bus", "Event", "Subscription", "make_bus"]
