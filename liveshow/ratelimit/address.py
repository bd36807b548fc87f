"""Which address a request comes from: the socket peer, or the client a trusted proxy names.

``X-Forwarded-For`` is anyone's to write, so it is believed only when the peer is one of the proxies
named in ``LIVESHOW_TRUSTED_PROXIES`` (addresses or networks). The list is read right to left: each
trusted proxy appended the address it saw, so the first address from the right that is not a trusted
proxy is the client; what lies left of it was written by the client itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(entries: Iterable[str]) -> tuple[Network, ...]:
    """``"10.0.0.5"``, ``"10.0.0.0/8"``, ``"::1"``; a bad entry fails at startup."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(peer: str | None, forwarded_for: str | None, proxies: tuple[Network, ...]) -> str:
    """The address to count a request against ("unknown" when the server cannot tell)."""
    peer_address = _address(peer or "")
    if peer_address is None:
        return peer or "unknown"
    if not proxies or not forwarded_for or not _trusted(peer_address, proxies):
        return str(peer_address)
    hops = [h for h in forwarded_for.split(",") if h.strip()]
    client = peer_address
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # garbage from here on was not written by a proxy we trust
        client = address
        if not _trusted(address, proxies):
            break
    return str(client)


def budget_key(address: str) -> str:
    """What one address's budget is kept under: an IPv6 client usually holds a whole /64, so the /64
    counts as one address (else each of its 2**64 addresses would get a budget of its own)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)
