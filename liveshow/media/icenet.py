"""Where the server's own peers gather ICE candidates: which local addresses, which UDP ports, and
which address they announce (the public one of a 1:1 NAT, as mediasoup's ``announcedIp``). A range of
one port is shared by every peer of the process (``udpmux``).

aioice gathers on every non-loopback address of the machine, on ephemeral ports, and announces what
it bound; none of that can be told through aiortc. ``IcePeer`` configures each of its aioice
connections just before gathering (the first ``setLocalDescription``): host candidates come from
``IceNetwork``, STUN and TURN (if any) are still aioice's own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import ipaddress
import logging
import random
import socket
from collections.abc import Iterator
from typing import Any

from aioice import turn
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol, TransportPolicy, server_reflexive_candidate
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from liveshow.media.errors import NoMediaPort
from liveshow.media.iceservers import IceConfigError
from liveshow.media.udpmux import UdpMux

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class IceNetwork:
    # Local addresses to gather host candidates on; empty means aioice's choice (every non-loopback one).
    interfaces: tuple[str, ...] = ()
    # Written into host candidates instead of the bound address (same IP version); empty: the bound one.
    announced_address: str = ""
    # Inclusive UDP port range host candidates bind in; 0, 0 means ephemeral ports.
    port_min: int = 0
    port_max: int = 0

    @classmethod
    def from_settings(cls, interfaces: tuple[str, ...], announced: str, port_range: str) -> IceNetwork:
        for address in (*interfaces, *([announced] if announced else [])):
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise IceConfigError(f"ICE addresses must be IP addresses, not {address!r}") from None
        low, high = parse_port_range(port_range)
        return cls(tuple(interfaces), announced, low, high)

    def ports(self, start: int) -> Iterator[int]:
        """Every port of the range once, beginning at ``start`` (so concurrent peers spread out)."""
        if not self.port_min:
            yield 0
            return
        span = self.port_max - self.port_min + 1
        for i in range(span):
            yield self.port_min + (start - self.port_min + i) % span

    def announce(self, bound: str) -> str:
        if not self.announced_address:
            return bound
        same_family = (
            ipaddress.ip_address(bound).version == ipaddress.ip_address(self.announced_address).version
        )
        return self.announced_address if same_family else bound


def parse_port_range(text: str) -> tuple[int, int]:
    """``"40000-40100"`` -> (40000, 40100); ``"40000"`` is a range of one port; empty -> (0, 0)."""
    text = text.strip()
    if not text:
        return 0, 0
    low_text, _, high_text = text.partition("-")
    try:
        low = int(low_text)
        high = int(high_text) if high_text else low
    except ValueError:
        raise IceConfigError(f"LIVESHOW_ICE_PORT_RANGE must look like 40000-40100, not {text!r}") from None
    if not 1 <= low <= high <= 65535:
        raise IceConfigError(f"LIVESHOW_ICE_PORT_RANGE must be ports 1-65535, low to high, not {text!r}")
    return low, high


def bind_udp(address: str, network: IceNetwork, start: int) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    for port in network.ports(start):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((address, port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE and port:
                continue
            raise
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, turn.UDP_SOCKET_BUFFER_SIZE)
        sock.setblocking(False)
        return sock
    raise OSError(errno.EADDRINUSE, f"no free UDP port in {network.port_min}-{network.port_max} on {address}")


def configure(connection: Connection, network: IceNetwork, mux: UdpMux | None = None) -> None:
    """Make ``connection`` gather its host candidates as ``network`` says (before it gathers); with
    ``mux``, every host candidate is a share of the process's one UDP port on that address."""
    original = connection.get_component_candidates

    async def get_component_candidates(
        component: int, addresses: list[str], timeout: int = 5
    ) -> list[Candidate]:
        # aioice passes no addresses under the relay policy: keep that.
        if addresses or connection._transport_policy == TransportPolicy.ALL:
            addresses = list(network.interfaces) or addresses
        loop = asyncio.get_running_loop()
        candidates: list[Candidate] = []
        protocols: list[StunProtocol] = []
        bound: tuple[Any, ...]
        for address in addresses:
            try:
                if mux is not None:
                    protocol = StunProtocol(connection)
                    bound = await mux.attach(address, connection.local_username, protocol)
                else:
                    sock = bind_udp(address, network, random.randint(network.port_min, network.port_max))
                    _, protocol = await loop.create_datagram_endpoint(
                        lambda: StunProtocol(connection), sock=sock
                    )
                    bound = sock.getsockname()
            except OSError as exc:
                log.warning("ICE: could not bind a UDP port on %s: %s", address, exc)
                continue
            host = network.announce(bound[0])
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", host),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=host,
                port=bound[1],
                type="host",
            )
            protocols.append(protocol)
            candidates.append(protocol.local_candidate)
        connection._protocols += protocols
        if connection.stun_server and protocols:
            stun_server = connection.stun_server
            tasks = [
                asyncio.create_task(server_reflexive_candidate(p, stun_server))
                for p in protocols
                if ipaddress.ip_address(p.local_candidate.host).version == 4
            ]
            done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            candidates += [t.result()[0] for t in done if t.exception() is None]
        # TURN: aioice's own path, with no host addresses (those are done above).
        saved_stun, connection.stun_server = connection.stun_server, None
        try:
            candidates += await original(component, [], timeout)
        finally:
            connection.stun_server = saved_stun
        return candidates

    connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]


class IcePeer(RTCPeerConnection):
    """An aiortc peer whose host candidates follow ``IceNetwork``."""

    def __init__(
        self, configuration: RTCConfiguration, network: IceNetwork, mux: UdpMux | None = None
    ) -> None:
        super().__init__(configuration)
        self._ice_network = network
        self._mux = mux
        self._configured: set[int] = set()

    def ice_connections(self) -> list[Connection]:
        transports: set[Any] = self._RTCPeerConnection__iceTransports  # type: ignore[attr-defined]
        return [t.iceGatherer._connection for t in transports]

    async def setLocalDescription(self, sessionDescription: RTCSessionDescription | None = None) -> None:
        if self._ice_network != IceNetwork():
            for connection in self.ice_connections():
                if id(connection) not in self._configured:
                    configure(connection, self._ice_network, self._mux)
                    self._configured.add(id(connection))
        await super().setLocalDescription(sessionDescription)
        network = self._ice_network
        if network != IceNetwork() and not any(c.local_candidates for c in self.ice_connections()):
            # An answer without candidates would leave the client waiting for nothing: say so instead.
            ports = f"ports {network.port_min}-{network.port_max}" if network.port_min else "a port"
            where = ", ".join(network.interfaces) or "this machine's addresses"
            raise NoMediaPort(
                f"No free media port ({ports} on {where}): this server is full, try again shortly.",
                retry_after_ms=5000,
            )
