"""The server's own aiortc peers on loopback: no STUN/TURN unless configured, the interfaces, port
range and announced address the settings name."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp
from starlette.testclient import TestClient

from liveshow.app import create_app
from liveshow.media.errors import NoMediaPort
from liveshow.media.icenet import IceNetwork, IcePeer
from liveshow.media.iceservers import IceConfigError
from liveshow.media.peers import PeerIce, make_peer
from tests.conftest import make_settings
from tests.test_whip_bad_input import offer
from tests.test_whip_media import make_show

LOOPBACK = IceNetwork(interfaces=("127.0.0.1",))


class Sends:
    """Every UDP datagram sent in this process: (from, to)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = []
        transport_class = asyncio.selector_events._SelectorDatagramTransport  # type: ignore[attr-defined]
        real = transport_class.sendto

        def sendto(transport: Any, data: bytes, addr: Any = None) -> None:
            self.seen.append(
                (transport.get_extra_info("sockname"), tuple(addr or transport.get_extra_info("peername")))
            )
            real(transport, data, addr)

        monkeypatch.setattr(transport_class, "sendto", sendto)


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> Sends:
    return Sends(monkeypatch)


def candidates(sdp: str) -> list[Any]:
    return [
        candidate_from_sdp(line[len("a=candidate:") :])
        for line in sdp.splitlines()
        if line.startswith("a=candidate:")
    ]


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def negotiate(server: RTCPeerConnection, client: RTCPeerConnection) -> str:
    """A data channel offer from ``client``, answered by ``server``; returns the answer SDP."""
    client.createDataChannel("probe")
    await client.setLocalDescription(await client.createOffer())
    await server.setRemoteDescription(client.localDescription)
    await server.setLocalDescription(await server.createAnswer())
    answer = server.localDescription.sdp
    await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return answer


def server_sockets(pc: IcePeer) -> set[tuple[Any, ...]]:
    return {p.transport.get_extra_info("sockname") for c in pc.ice_connections() for p in c._protocols}


def free_udp_range(size: int) -> tuple[int, int]:
    """A run of ``size`` UDP ports free on loopback right now (others may take one later: the binder
    skips taken ports, which is part of what is tested)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            low = probe.getsockname()[1]
        if low + size > 65535:
            continue
        socks = []
        try:
            for port in range(low, low + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return low, low + size - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free UDP port range")


def test_the_server_configures_no_ice_server_when_none_is_set(tmp_path: Path, sqlite_url: str) -> None:
    app = create_app(make_settings(tmp_path, sqlite_url))
    peer_ice = app.state.ctx.media.peer_ice
    assert peer_ice.stun_urls == ()
    pc = make_peer(peer_ice)
    # aiortc would fall back to stun.l.google.com for iceServers=None
    assert pc._RTCPeerConnection__configuration.iceServers == []  # type: ignore[attr-defined]
    asyncio.run(pc.close())


def test_a_server_without_ice_servers_sends_only_to_its_peer(sends: Sends) -> None:
    async def scenario() -> None:
        server = make_peer(PeerIce(LOOPBACK))
        client = IcePeer(RTCConfiguration(iceServers=[]), LOOPBACK)
        assert isinstance(server, IcePeer)
        try:
            answer = await negotiate(server, client)
            await wait_for(
                lambda: server.connectionState == "connected" and client.connectionState == "connected"
            )
            for connection in server.ice_connections():
                assert connection.stun_server is None and connection.turn_server is None
            server_candidates = candidates(answer)
            assert server_candidates and {c.ip for c in server_candidates} == {"127.0.0.1"}
            ours = server_sockets(server)
            client_addrs = {(c.ip, c.port) for c in candidates(client.localDescription.sdp)}
            targets = {to for frm, to in sends.seen if frm in ours}
            assert targets, "the server sent nothing at all"
            assert targets <= client_addrs, f"the server sent to {targets - client_addrs}"
        finally:
            await client.close()
            await server.close()

    asyncio.run(scenario())


def test_host_candidates_use_the_configured_interfaces_and_port_range() -> None:
    low, high = free_udp_range(6)

    async def scenario() -> None:
        network = IceNetwork(("127.0.0.1",), port_min=low, port_max=high)
        peers = [
            (make_peer(PeerIce(network)), IcePeer(RTCConfiguration(iceServers=[]), LOOPBACK))
            for _ in range(3)
        ]
        try:
            answers = [await negotiate(server, client) for server, client in peers]
            await wait_for(lambda: all(s.connectionState == "connected" for s, _ in peers))
            ports = []
            for answer in answers:
                found = candidates(answer)
                assert found and all(c.ip == "127.0.0.1" and c.type == "host" for c in found)
                ports += [c.port for c in found]
            assert all(low <= p <= high for p in ports)
            assert len(set(ports)) == len(ports)  # each peer its own port
        finally:
            for server, client in peers:
                await client.close()
                await server.close()

    asyncio.run(scenario())


def test_a_full_port_range_is_refused_with_a_reason() -> None:
    low, high = free_udp_range(2)
    taken = []
    for port in (low, high):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", port))
        taken.append(s)

    async def scenario() -> None:
        server = make_peer(PeerIce(IceNetwork(("127.0.0.1",), port_min=low, port_max=high)))
        client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            with pytest.raises(NoMediaPort) as info:
                await negotiate(server, client)
            assert info.value.status == 503 and f"{low}-{high}" in info.value.message
        finally:
            await client.close()
            await server.close()

    try:
        asyncio.run(scenario())
    finally:
        for s in taken:
            s.close()


def test_the_announced_address_replaces_the_bound_one_in_the_answer() -> None:
    async def scenario() -> None:
        server = make_peer(PeerIce(IceNetwork(("127.0.0.1",), announced_address="203.0.113.7")))
        client = IcePeer(RTCConfiguration(iceServers=[]), LOOPBACK)
        try:
            answer = await negotiate(server, client)
            found = candidates(answer)
            assert found and {c.ip for c in found} == {"203.0.113.7"}
            # still bound where it was told to be
            assert {addr[0] for addr in server_sockets(server)} == {"127.0.0.1"}  # type: ignore[arg-type]
        finally:
            await client.close()
            await server.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "overrides",
    [
        {"ice_servers": ("turn:turn.example.com:3478",)},
        {"ice_port_range": "5-1"},
        {"ice_interfaces": ("eth0",)},
    ],
)
def test_unusable_ice_settings_fail_at_startup(
    tmp_path: Path, sqlite_url: str, overrides: dict[str, Any]
) -> None:
    with pytest.raises(IceConfigError):
        create_app(make_settings(tmp_path, sqlite_url, **overrides))


LINK = re.compile(r'<([^>]*)>; rel="ice-server"((?:; [a-z-]+="[^"]*")*)')


def ice_links(header: str) -> list[tuple[str, dict[str, str]]]:
    return [(url, dict(re.findall(r'; ([a-z-]+)="([^"]*)"', params))) for url, params in LINK.findall(header)]


def test_whip_and_whep_announce_ice_servers_with_fresh_turn_credentials(
    tmp_path: Path, sqlite_url: str
) -> None:
    stun, turn = "stun:stun.example.com:3478", "turn:turn.example.com:3478?transport=udp"
    settings = make_settings(
        tmp_path,
        sqlite_url,
        ice_servers=(stun, turn),
        turn_secret="s3cret",
        turn_ttl_seconds=600,
        ice_announced_address="127.0.0.1",  # the server's own peers need not ask stun.example.com
    )
    app = create_app(settings)
    show, _ = make_show(app, "seller" + secrets.token_hex(3))
    good = asyncio.run(offer("video", "audio"))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        before = time.time()
        responses = [
            client.options(f"/whep/{show.id}"),
            client.options(f"/whip/{show.id}"),
            client.post(
                f"/whip/{show.id}",
                content=good,
                headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {show.stream_key}"},
            ),
        ]
        after = time.time()
    assert responses[2].status_code == 201, responses[2].text
    usernames = set()
    for resp in responses:
        links = ice_links(resp.headers["link"])
        assert [url for url, _ in links] == [stun, turn]
        assert links[0][1] == {}
        params = links[1][1]
        assert params["credential-type"] == "password"
        expiry = int(params["username"].split(":")[0])
        assert int(before) + 600 <= expiry <= int(after) + 600
        digest = hmac.new(b"s3cret", params["username"].encode(), hashlib.sha1).digest()
        assert params["credential"] == base64.b64encode(digest).decode()
        usernames.add(params["username"])
    assert len(usernames) == 3  # one per response: each session its own


def test_no_ice_servers_no_link_header(tmp_path: Path, sqlite_url: str) -> None:
    app = create_app(make_settings(tmp_path, sqlite_url))
    show, _ = make_show(app, "seller" + secrets.token_hex(3))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        resp = client.options(f"/whep/{show.id}")
    assert resp.status_code == 204 and "link" not in resp.headers


def test_whip_answers_503_when_every_media_port_is_taken(tmp_path: Path, sqlite_url: str) -> None:
    low, high = free_udp_range(2)
    taken = []
    for port in (low, high):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", port))
        taken.append(s)
    try:
        app = create_app(make_settings(tmp_path, sqlite_url, ice_port_range=f"{low}-{high}"))
        show, _ = make_show(app, "seller" + secrets.token_hex(3))
        good = asyncio.run(offer("video", "audio"))
        headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {show.stream_key}"}
        with TestClient(app, base_url="http://127.0.0.1") as client:
            resp = client.post(f"/whip/{show.id}", content=good, headers=headers)
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"] == "no_media_port" and f"{low}-{high}" in resp.json()["reason"]
            assert resp.headers["access-control-allow-origin"] == "*"
            for s in taken:
                s.close()
            taken.clear()
            # a port is free again: the same show can go live (the failed attempt left nothing behind)
            assert client.post(f"/whip/{show.id}", content=good, headers=headers).status_code == 201
    finally:
        for s in taken:
            s.close()
