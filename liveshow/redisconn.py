"""Redis clients shared by many coroutines: a bounded pool that makes a burst wait its turn.

redis-py's default asyncio pool opens up to 100 connections and then refuses the next call with
"Too many connections". A room of thousands of sockets joining at once (a show going live, a process
restarting) makes that many presence joins in the same instant, and the refusal would land on
whatever else needed Redis then: a bid's command, the presence leader's lease. A blocking pool queues
the burst on a bounded number of connections instead; a call fails only when no connection comes free
within WAIT_SECONDS, which means Redis itself is in trouble.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

MAX_CONNECTIONS = 50
WAIT_SECONDS = 10.0


def connect(url: str, **options: Any) -> aioredis.Redis:
    """A client for ``url`` on its own bounded pool (closed with the client); options go to each
    connection (``client_name``, ``socket_timeout`` ...)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=WAIT_SECONDS, decode_responses=True, **options
    )
    return aioredis.Redis.from_pool(pool)
