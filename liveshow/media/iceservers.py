"""Which STUN/TURN servers a WebRTC peer is told about, and the credentials that go with them (pure).

TURN credentials are either static (one username/password for everyone) or time-limited by the TURN
REST scheme that coturn's ``use-auth-secret`` checks: username ``{expiry}:{user}``, password
``base64(HMAC-SHA1(secret, username))``. Time-limited ones are minted fresh for each session, so a
leaked page only opens the relay until its expiry, and nothing has to be stored on either server.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac

STUN_SCHEMES = ("stun:", "stuns:")
TURN_SCHEMES = ("turn:", "turns:")


class IceConfigError(ValueError):
    """A setting names a server or credential the server cannot use; raised once, at startup."""


@dataclasses.dataclass(frozen=True)
class IceServer:
    """One entry of RTCConfiguration.iceServers: URLs sharing one credential (none for STUN)."""

    urls: tuple[str, ...]
    username: str = ""
    credential: str = ""


@dataclasses.dataclass(frozen=True)
class IceServerSettings:
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_username: str = ""
    turn_password: str = ""
    # Shared with coturn's static-auth-secret; when set, credentials are minted per session.
    turn_secret: str = ""
    turn_ttl_seconds: int = 86400

    @classmethod
    def from_urls(
        cls,
        urls: tuple[str, ...],
        turn_username: str = "",
        turn_password: str = "",
        turn_secret: str = "",
        turn_ttl_seconds: int = 86400,
    ) -> IceServerSettings:
        """Split one list of stun:/turn: URLs (LIVESHOW_ICE_SERVERS) and check the credentials fit."""
        stun = tuple(u for u in urls if u.lower().startswith(STUN_SCHEMES))
        turn = tuple(u for u in urls if u.lower().startswith(TURN_SCHEMES))
        unknown = [u for u in urls if u not in stun and u not in turn]
        if unknown:
            raise IceConfigError(
                f"ICE server URLs must start with stun:, stuns:, turn: or turns: ({unknown[0]!r})"
            )
        if turn and not turn_secret and not (turn_username and turn_password):
            raise IceConfigError(
                "A TURN server needs credentials: set LIVESHOW_TURN_SECRET (time-limited, coturn's"
                " static-auth-secret) or LIVESHOW_TURN_USERNAME and LIVESHOW_TURN_PASSWORD."
            )
        if turn_secret and turn_ttl_seconds <= 0:
            raise IceConfigError("LIVESHOW_TURN_TTL_SECONDS must be positive.")
        return cls(stun, turn, turn_username, turn_password, turn_secret, turn_ttl_seconds)

    def for_session(self, now: float, user: str) -> tuple[IceServer, ...]:
        """The servers to hand one client session; ``user`` names it in time-limited usernames."""
        servers: list[IceServer] = []
        if self.stun_urls:
            servers.append(IceServer(self.stun_urls))
        if self.turn_urls:
            if self.turn_secret:
                username, password = rest_credentials(
                    self.turn_secret, user, int(now) + self.turn_ttl_seconds
                )
            else:
                username, password = self.turn_username, self.turn_password
            servers.append(IceServer(self.turn_urls, username, password))
        return tuple(servers)


def rest_credentials(secret: str, user: str, expiry: int) -> tuple[str, str]:
    """TURN REST API credentials (draft-uberti-behave-turn-rest), as coturn's use-auth-secret checks them."""
    if ":" in user:
        raise ValueError("a TURN REST user name cannot contain ':' (it separates the expiry)")
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def link_header(servers: tuple[IceServer, ...]) -> str:
    """RFC 9725 section 4.6: one ``Link`` value per URL, with the credential of its server."""
    links: list[str] = []
    for server in servers:
        for url in server.urls:
            link = f'<{url}>; rel="ice-server"'
            if server.username or server.credential:
                link += (
                    f"; username={_quoted(server.username)}; credential={_quoted(server.credential)}"
                    '; credential-type="password"'
                )
            links.append(link)
    return ", ".join(links)
