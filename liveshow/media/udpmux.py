"""One UDP port for every peer of a process (``LIVESHOW_ICE_PORT_RANGE`` of a single port).

A firewall then opens one port per process. Datagrams are told apart the way LiveKit's and Janus's
single-port modes do it: a STUN request names its peer in USERNAME (``our-ufrag:their-ufrag``), and
from then on everything from that remote address (DTLS, SRTP, consent checks) belongs to the same peer;
an address a peer sends to is its own as well (answers to its connectivity checks carry no USERNAME).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from aioice import stun
from aioice.ice import StunProtocol

log = logging.getLogger(__name__)

Address = tuple[Any, ...]


def stun_request_ufrag(data: bytes) -> str | None:
    """The local ufrag named by a STUN Binding request (USERNAME is ``ours:theirs``), else None."""
    if len(data) < 20 or data[0] > 1:  # not STUN (RFC 7983: DTLS 20-63, RTP/RTCP 128-191)
        return None
    try:
        message = stun.parse_message(data)
    except ValueError:
        return None
    if message.message_class != stun.Class.REQUEST:
        return None
    username = message.attributes.get("USERNAME")
    return username.split(":", 1)[0] if isinstance(username, str) else None


class SharedTransport(asyncio.DatagramTransport):
    """What one peer's aioice protocol sees as its own socket: writes go out of the shared one."""

    def __init__(self, endpoint: MuxEndpoint, protocol: StunProtocol) -> None:
        super().__init__()
        self._endpoint = endpoint
        self._protocol = protocol
        self._closed = False

    def sendto(self, data: Any, addr: Any = None) -> None:
        if self._closed or addr is None:
            return
        self._endpoint.claim((addr[0], addr[1]), self._protocol)
        self._endpoint.transport.sendto(data, addr)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._endpoint.transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._closed or self._endpoint.transport.is_closing()

    def get_write_buffer_size(self) -> int:
        # the selector transport has it (the relay backs off on it); typeshed's DatagramTransport does not
        real: Any = self._endpoint.transport
        return int(real.get_write_buffer_size())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._endpoint.forget(self._protocol)
        asyncio.get_running_loop().call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()


class MuxEndpoint(asyncio.DatagramProtocol):
    """One bound socket and the peers that share it."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport
        self.by_ufrag: dict[str, StunProtocol] = {}
        self.by_addr: dict[Address, StunProtocol] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def claim(self, addr: Address, protocol: StunProtocol) -> None:
        if self.by_addr.get(addr) is not protocol:
            self.by_addr[addr] = protocol

    def forget(self, protocol: StunProtocol) -> None:
        for key in [k for k, p in self.by_ufrag.items() if p is protocol]:
            del self.by_ufrag[key]
        for addr in [a for a, p in self.by_addr.items() if p is protocol]:
            del self.by_addr[addr]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        key = (addr[0], addr[1])
        protocol = self.by_addr.get(key)
        ufrag = stun_request_ufrag(data) if data[:1] in (b"\x00", b"\x01") else None
        if ufrag is not None:
            # A (new) peer's check, or a known address moving to another peer (a client's new session).
            named = self.by_ufrag.get(ufrag)
            if named is not None:
                protocol = named
                self.claim(key, named)
        if protocol is None:
            return  # nobody here expects it: a stray or a late packet of a closed peer
        protocol.datagram_received(data, key)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP mux socket error: %s", exc)


class UdpMux:
    """The shared sockets of one process, one per local address, all on ``port``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._endpoints: dict[str, MuxEndpoint] = {}
        self._lock = asyncio.Lock()

    async def attach(self, address: str, ufrag: str, protocol: StunProtocol) -> tuple[Any, ...]:
        """Give ``protocol`` its share of the socket on ``address``; returns the socket's address."""
        async with self._lock:
            endpoint = self._endpoints.get(address)
            if endpoint is None:
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                _, endpoint = await asyncio.get_running_loop().create_datagram_endpoint(
                    MuxEndpoint, local_addr=(address, self.port), family=family
                )
                self._endpoints[address] = endpoint
        endpoint.by_ufrag[ufrag] = protocol
        protocol.connection_made(SharedTransport(endpoint, protocol))
        sockname: tuple[Any, ...] = endpoint.transport.get_extra_info("sockname")
        return sockname

    def close(self) -> None:
        for endpoint in self._endpoints.values():
            endpoint.transport.close()
        self._endpoints.clear()
