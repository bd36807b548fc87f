"""The limiter: the pure sliding log and rules, the same behaviour from the memory and Redis limiters,
the client address behind trusted proxies, and one budget shared by two apps on one Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from liveshow.app import create_app
from liveshow.errors import RateLimited
from liveshow.ratelimit import (
    Limiter,
    MemoryLimiter,
    RedisLimiter,
    Rule,
    SlidingLog,
    Verdict,
    check,
    parse_rule,
    refusal,
    retry_after_header,
)
from liveshow.ratelimit.adapters import LimiterUnavailable
from liveshow.ratelimit.address import budget_key, client_address, parse_proxies
from tests.conftest import REDIS_URL, free_port, make_settings
from tests.helpers import form_csrf

# ---------------------------------------------------------------- pure rules


def test_parse_rule() -> None:
    assert parse_rule("chat", "5/10") == Rule("chat", 5, 10.0)
    assert parse_rule("chat", " 3/0.5 ") == Rule("chat", 3, 0.5)
    for off in ("off", "0", "", "OFF"):
        assert parse_rule("x", off).off
    for bad in ("5", "5/", "/10", "a/b", "5/0", "-1/10", "5/-3", "5/inf", "5/nan", "5/9999999"):
        with pytest.raises(ValueError, match="COUNT/SECONDS"):
            parse_rule("x", bad)


def test_sliding_log_counts_in_the_window_and_says_how_long_to_wait() -> None:
    rule, log = Rule("chat", 3, 10.0), SlidingLog()
    assert [log.hit(rule, t).allowed for t in (0.0, 1.0, 2.0)] == [True, True, True]
    refused = log.hit(rule, 5.0)
    assert not refused.allowed and refused.wait == pytest.approx(5.0) and not refused.slow
    assert log.hit(rule, 9.9).wait == pytest.approx(0.1)  # a refused hit is not counted
    assert log.hit(rule, 10.0).allowed  # the first hit left the window
    assert not log.hit(rule, 10.5).allowed and log.hit(rule, 11.0).allowed


def test_slow_mode_spaces_hits_from_the_last_one_even_beyond_the_window() -> None:
    rule, log = Rule("chat", 5, 10.0, spaced=True), SlidingLog()
    assert log.hit(rule, 0.0, slow=30).allowed
    refused = log.hit(rule, 12.0, slow=30)
    assert refused.slow and refused.wait == pytest.approx(18.0)
    assert log.hit(rule, 30.0, slow=30).allowed
    assert "Slow mode" in refusal(rule, log.hit(rule, 31.0, slow=30), slow=30).message


def test_an_off_rule_allows_everything() -> None:
    rule, log = parse_rule("x", "off"), SlidingLog()
    assert all(log.hit(rule, float(t)).allowed for t in range(1000))


def test_limits_say_which_rules_count(tmp_path: Path) -> None:
    from liveshow.ratelimit.service import Limits

    settings = make_settings(tmp_path, "sqlite://", limit_chat_account="off", limit_socket_address="5/60")
    limits = Limits(settings, MemoryLimiter())
    assert not limits.counts("bid.account")  # off: the bid path skips the check
    assert limits.counts("chat.account")  # off, but slow mode may still space chat
    assert limits.counts("socket.address")


def test_refusal_says_when_to_try_again_in_both_shapes() -> None:
    exc = refusal(Rule("signin.address", 20, 300.0), Verdict(False, 12.2))
    assert exc.status == 429 and exc.code == "rate_limited"
    assert exc.message == "Too many sign-in attempts; try again in 13 s."
    frame = exc.frame()
    assert frame["type"] == "error" and frame["retry_after_ms"] == 12200 and frame["reason"] == exc.message
    assert retry_after_header(exc.details) == {"Retry-After": "13"}
    assert retry_after_header({}) == {}


# ---------------------------------------------------------------- client address

PROXIES = parse_proxies(["10.0.0.0/8", "::1"])


def test_the_peer_is_the_client_unless_it_is_a_trusted_proxy() -> None:
    # No trusted proxy: the header is anyone's to write and is ignored.
    assert client_address("203.0.113.9", "1.2.3.4", ()) == "203.0.113.9"
    # A peer that is not a trusted proxy: ignored too.
    assert client_address("203.0.113.9", "1.2.3.4", PROXIES) == "203.0.113.9"
    # Through the trusted proxy: the address it appended.
    assert client_address("10.0.0.5", "198.51.100.7", PROXIES) == "198.51.100.7"
    # The client's own (forged) entries lie left of what the proxy appended.
    assert client_address("10.0.0.5", "1.1.1.1, 198.51.100.7", PROXIES) == "198.51.100.7"
    # Two trusted proxies in a row: skip both.
    assert client_address("10.0.0.5", "198.51.100.7, 10.0.0.9", PROXIES) == "198.51.100.7"
    # Garbage where the client should be: stop at the last proxy we trust.
    assert client_address("10.0.0.5", "not-an-ip", PROXIES) == "10.0.0.5"
    assert client_address("::1", "[2001:db8::5]:4431", PROXIES) == "2001:db8::5"
    assert client_address("::ffff:198.51.100.7", None, PROXIES) == "198.51.100.7"
    assert client_address(None, "1.2.3.4", PROXIES) == "unknown"
    with pytest.raises(ValueError):
        parse_proxies(["not a network"])


def test_an_ipv6_client_is_counted_by_its_64() -> None:
    assert budget_key("2001:db8:1:2:aaaa::1") == budget_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert budget_key("2001:db8:1:3::1") != budget_key("2001:db8:1:2::1")
    assert budget_key("198.51.100.7") == "198.51.100.7" and budget_key("testclient") == "testclient"


# ---------------------------------------------------------------- both limiters


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[Limiter]:
    made: Limiter
    if request.param == "memory":
        made = MemoryLimiter()
    else:
        made = RedisLimiter(REDIS_URL, request.getfixturevalue("redis_prefix"))
    yield made
    await made.close()


async def _until_allowed(limiter: Limiter, rule: Rule, key: str, deadline_s: float) -> None:
    """Poll until a hit is allowed again (a busy machine may be late, never early)."""
    started = time.monotonic()
    while not (await limiter.hit(rule, key)).allowed:
        assert time.monotonic() - started < deadline_s, "the window never slid"
        await asyncio.sleep(0.02)


async def test_limit_per_key_then_the_window_slides(limiter: Limiter) -> None:
    rule = Rule("test.window", 3, 0.6)
    started = time.monotonic()
    for _ in range(3):
        await check(limiter, rule, "a")
    with pytest.raises(RateLimited) as info:
        await check(limiter, rule, "a")
    assert 0 < info.value.details["retry_after_ms"] <= 600
    await check(limiter, rule, "b")  # another key has its own budget
    await check(limiter, Rule("test.other", 3, 0.6), "a")  # and so has another rule
    await _until_allowed(limiter, rule, "a", deadline_s=10)
    assert time.monotonic() - started >= 0.55  # not before the window slid (Redis counts whole ms)


async def test_slow_mode_across_the_limit(limiter: Limiter) -> None:
    rule = Rule("chat.account", 5, 10.0, spaced=True)
    await check(limiter, rule, "u")
    with pytest.raises(RateLimited, match="Slow mode") as info:
        await check(limiter, rule, "u", slow=30)
    assert 29_000 < info.value.details["retry_after_ms"] <= 30_000
    await check(limiter, rule, "v", slow=30)  # per key


async def test_an_off_rule_never_refuses(limiter: Limiter) -> None:
    rule = parse_rule("test.off", "off")
    for _ in range(50):
        await check(limiter, rule, "a")


async def test_concurrent_hits_never_exceed_the_limit(limiter: Limiter) -> None:
    rule = Rule("test.burst", 10, 60.0)
    verdicts = await asyncio.gather(*(limiter.hit(rule, "same") for _ in range(40)))
    assert sum(v.allowed for v in verdicts) == 10


async def test_redis_down_is_answered_503_not_500() -> None:
    limiter = RedisLimiter(f"redis://127.0.0.1:{free_port()}/0", "nobody-listens")
    try:
        with pytest.raises(LimiterUnavailable) as info:
            await check(limiter, Rule("test.down", 3, 1.0), "a")
    finally:
        await limiter.close()
    assert info.value.status == 503 and info.value.code == "unavailable"
    assert retry_after_header(info.value.details) == {"Retry-After": "2"}


def test_memory_limiter_forgets_idle_keys() -> None:
    now = [0.0]
    limiter = MemoryLimiter(clock=lambda: now[0])
    assert limiter.hit_now(Rule("x", 2, 1.0), "a").allowed
    now[0] = 10_000.0
    limiter.forget_idle()
    assert not limiter.logs


# ---------------------------------------------------------------- two apps, one Redis


@pytest.mark.redis
def test_two_apps_on_one_redis_share_one_sign_in_budget(
    tmp_path: Path, sqlite_url: str, redis_prefix: str
) -> None:
    """Three attempts per address, wherever they land: the fourth is refused by the other process."""
    base = make_settings(
        tmp_path, sqlite_url, bus_url=REDIS_URL, bus_prefix=redis_prefix, limit_signin_address="3/60"
    )
    apps = [create_app(base), create_app(base.with_overrides(data_dir=tmp_path / "second"))]
    with (
        TestClient(apps[0], base_url="http://127.0.0.1") as a,
        TestClient(apps[1], base_url="http://127.0.0.1") as b,
    ):
        statuses = []
        for client in (a, b, a, b):
            token = form_csrf(client, "/signin")
            resp = client.post(
                "/signin", data={"username": "x", "password": "wrong pass", "csrf_token": token}
            )
            statuses.append(resp.status_code)
        assert statuses == [401, 401, 401, 429]
        assert int(resp.headers["retry-after"]) > 0
