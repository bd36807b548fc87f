"""The app's rate limits: each rule read once from settings, one limiter (memory or Redis) behind
them, and the client address of a request. Handlers call ``check``; refusals raise RateLimited."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from liveshow.ratelimit.adapters import Limiter, check, make_limiter
from liveshow.ratelimit.address import budget_key, client_address, parse_proxies
from liveshow.ratelimit.rules import Rule, parse_rule
from liveshow.settings import Settings

# Rule name -> the setting holding it ("COUNT/SECONDS"); docs/security.md lists them with defaults.
RULE_SETTINGS = {
    "signin.address": "limit_signin_address",
    "signin.account": "limit_signin_account",
    "signup.address": "limit_signup_address",
    "chat.account": "limit_chat_account",
    "reaction.sender": "limit_reaction_sender",
    "bid.account": "limit_bid_account",
    "whip.address": "limit_whip_address",
    "whep.address": "limit_whep_address",
    "socket.address": "limit_socket_address",
    "socket.account": "limit_socket_account",
}


class Limits:
    def __init__(self, settings: Settings, limiter: Limiter | None = None) -> None:
        self.limiter = limiter or make_limiter(settings.bus_url, settings.bus_prefix)
        self.proxies = parse_proxies(settings.trusted_proxies)
        self.rules: dict[str, Rule] = {}
        for name, setting in RULE_SETTINGS.items():
            rule = parse_rule(name, str(getattr(settings, setting)))
            self.rules[name] = Rule(name, rule.limit, rule.window, spaced=name == "chat.account")

    def address(self, conn: HTTPConnection) -> str:
        """The client's address, as counted (an IPv6 /64 is one address)."""
        peer = conn.client.host if conn.client else None
        return budget_key(client_address(peer, conn.headers.get("x-forwarded-for"), self.proxies))

    def counts(self, name: str) -> bool:
        """Whether ``check`` under ``name`` counts anything (a rule switched off, with no slow mode,
        never refuses): a caller on a hot path skips the call."""
        rule = self.rules[name]
        return not rule.off or rule.spaced

    async def check(self, name: str, key: object, slow: float = 0.0) -> None:
        """Count one hit of ``key`` under the rule ``name``, or raise RateLimited."""
        await check(self.limiter, self.rules[name], str(key), slow)

    def forget_idle(self) -> None:
        self.limiter.forget_idle()

    async def close(self) -> None:
        await self.limiter.close()


# Every limit and cap off but chat's (the benchmarks spread chat over enough senders to stay under it):
# for load generators (bench/), whose thousands of clients share one address.
UNLIMITED: dict[str, str] = {
    **{setting: "off" for setting in RULE_SETTINGS.values() if setting != "limit_chat_account"},
    "max_whep_per_show": "0",
    "max_whep_per_address": "0",
    "max_room_sockets_per_user": "0",
    # and no headroom refusals: a load generator measures where the process breaks
    "max_viewers_per_process": "0",
    "cpu_ceiling": "0",
    "loop_lag_ceiling_ms": "0",
    "max_joining_viewers": "0",
}
