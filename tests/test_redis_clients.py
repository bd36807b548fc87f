"""A burst of Redis calls waits for a pooled connection instead of failing.

A room of a few thousand sockets joining at once (a show going live, a process restarting) makes as
many presence joins at the same moment; redis-py's default pool refuses the 101st with "Too many
connections", and the socket's join, the presence leader's lease or a bid's command would fail.
"""

from __future__ import annotations

import asyncio

import pytest

from liveshow.chat.presence import RedisPresence
from liveshow.ratelimit import RedisLimiter, check, parse_rule
from liveshow.redisconn import MAX_CONNECTIONS, connect
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.redis


async def test_a_join_storm_larger_than_the_pool_succeeds_and_counts_everyone(redis_prefix: str) -> None:
    presence = RedisPresence(REDIS_URL, redis_prefix)
    await presence.start()
    try:
        storm = 3 * MAX_CONNECTIONS
        await asyncio.gather(*(presence.join(7, f"m{n}", {"username": f"u{n}"}) for n in range(storm)))
        assert await presence.count(7) == storm
        assert await presence.try_lead(7, "me", 5000)
    finally:
        await presence.close()


async def test_a_burst_of_chat_limit_checks_larger_than_the_pool_is_decided(redis_prefix: str) -> None:
    limit = RedisLimiter(REDIS_URL, redis_prefix)
    rule = parse_rule("chat.account", "5/10")
    try:
        users = 3 * MAX_CONNECTIONS
        outcomes = await asyncio.gather(
            *(check(limit, rule, f"1:{n}") for n in range(users)), return_exceptions=True
        )
        assert outcomes == [None] * users
    finally:
        await limit.close()


async def test_the_pool_never_opens_more_than_its_bound(redis_prefix: str) -> None:
    name = redis_prefix.replace(":", "-")
    client = connect(REDIS_URL, client_name=name)
    try:
        await asyncio.gather(*(client.ping() for _ in range(4 * MAX_CONNECTIONS)))
        opened = [c for c in await client.client_list() if c.get("name") == name]
        assert 0 < len(opened) <= MAX_CONNECTIONS
    finally:
        await client.aclose()
