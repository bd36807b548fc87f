"""Where a Web Push may be sent: the endpoint's host name resolved, every address checked, and the
request made to the address that was checked.

A subscription's endpoint comes from a browser, that is from anyone. Refusing IP literals is not
enough: ``push.attacker.example`` may resolve to 10.0.0.5 or 169.254.169.254 (cloud metadata), and a
name that resolved to a public address when checked may resolve to an inside one a second later (DNS
rebinding). So every address the name has must be public, and the HTTP client connects to the one
that was checked (``pinned_session``) while TLS (SNI, certificate check) and ``Host`` keep the name.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from liveshow.errors import ValidationFailed

# host, port -> the host's addresses (as text); raises OSError when the name does not resolve.
Resolver = Callable[[str, int], list[str]]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries to the same host (IPv4-mapped, 6to4, NAT64 well-known)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(text: str, allow_loopback: bool = False) -> str | None:
    """Why a push must not go to this address, or None when it is a public unicast address."""
    try:
        address: Address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(address, ipaddress.IPv6Address) and (inner := _embedded_ipv4(address)) is not None:
        address = inner
    if address.is_loopback:
        return None if allow_loopback else "loopback"
    for flag in ("unspecified", "multicast", "link_local", "reserved", "private"):
        if getattr(address, f"is_{flag}"):
            return flag.replace("_", "-")
    if not address.is_global:
        return "not public"  # e.g. 100.64.0.0/10, shared by carrier-grade NAT
    return None


def endpoint_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ValidationFailed("endpoint has a bad port.") from exc
    return host, port


def checked_address(url: str, resolve: Resolver, allow_loopback: bool = False) -> str:
    """The address to send to: the endpoint's host resolved, refused unless every address is public."""
    host, port = endpoint_port(url)
    if not host:
        raise ValidationFailed("endpoint has no host.")
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise ValidationFailed("endpoint's host does not resolve.") from exc
    if not addresses:
        raise ValidationFailed("endpoint's host does not resolve.")
    for address in addresses:
        why = refusal(address, allow_loopback)
        if why is not None:
            # One inside address is enough: which one a client library picks is not ours to say.
            raise ValidationFailed(f"endpoint must be a public push service (its host has a {why} address).")
    return addresses[0]


class PinnedAdapter(HTTPAdapter):
    """Connects to ``address`` for requests to ``host`` (and refuses any other host: no redirects
    inside); TLS still verifies the certificate for ``host`` and sends it as SNI."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(max_retries=0)
        self.host = host.lower()
        self.address = address

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if str(host_params.get("host", "")).lower() != self.host:
            other = host_params.get("host")
            raise requests.ConnectionError(f"push request to another host ({other}) refused")
        host_params = {**host_params, "host": self.address}
        if host_params.get("scheme") == "https":
            pool_kwargs = {**pool_kwargs, "server_hostname": self.host, "assert_hostname": self.host}
        return host_params, pool_kwargs

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        netloc = urlsplit(request.url or "").netloc.rpartition("@")[2]
        request.headers["Host"] = netloc  # the name, not the address we connect to
        return super().send(request, *args, **kwargs)


def pinned_session(url: str, address: str) -> requests.Session:
    """A session for one push: to ``address``, no redirects, no proxies from the environment."""
    host, _port = endpoint_port(url)
    session = requests.Session()
    session.trust_env = False
    session.max_redirects = 0
    adapter = PinnedAdapter(host, address)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
