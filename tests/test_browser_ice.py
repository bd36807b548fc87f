"""Headless Chromium: the studio and the player make their peers with the ICE servers the server
announces, and a show plays relay-only through a real coturn with time-limited credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from liveshow.app import create_app
from liveshow.shows.models import Show
from tests.conftest import LiveServer, free_port, make_settings
from tests.test_browser_video import add_test_pages, frames_decoded, wait_until
from tests.test_whip_media import make_show

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parent.parent

# Records the configuration each RTCPeerConnection is made with; with RELAY set, forces the relay policy
# the way a viewer behind a strict firewall ends up (its only working candidates are TURN's).
RECORD_PEERS = """
window.__peerConfigs = [];
const Original = window.RTCPeerConnection;
window.RTCPeerConnection = function (config) {
  window.__peerConfigs.push(JSON.parse(JSON.stringify(config === undefined ? null : config)));
  return new Original(window.__forceRelay ? { ...(config || {}), iceTransportPolicy: "relay" } : config);
};
window.RTCPeerConnection.prototype = Original.prototype;
"""
SELECTED_PAIR = """async () => {
  const pc = window.liveshowPlayer && window.liveshowPlayer.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) return null;
  const type = (id) => stats.get(id).candidateType;
  return { local: type(pair.localCandidateId), remote: type(pair.remoteCandidateId) };
}"""


def valid_rest_credentials(server: dict[str, Any], secret: str) -> bool:
    expiry, _, user = server["username"].partition(":")
    digest = hmac.new(secret.encode(), server["username"].encode(), hashlib.sha1).digest()
    return (
        bool(user) and int(expiry) > time.time() and server["credential"] == base64.b64encode(digest).decode()
    )


# ---------------------------------------------------------------- coturn


@dataclass
class Turn:
    port: int
    secret: str
    log: Path


def stun_answers(port: int) -> bool:
    """A STUN Binding request over UDP gets a Binding success response (RFC 8489)."""
    request = struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, secrets.token_bytes(12))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        try:
            sock.sendto(request, ("127.0.0.1", port))
            data = sock.recv(2048)
        except OSError:
            return False
    return data[:2] == b"\x01\x01" and data[8:20] == request[8:20]


def free_tcp_and_udp_port() -> int:
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Turn]:
    """Debian's coturn on loopback, in the foreground as our child, checking TURN REST credentials."""
    if shutil.which("turnserver") is None:
        subprocess.run(["bash", str(ROOT / "scripts" / "ensure-coturn.sh")], check=False, timeout=900)
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.skip("coturn (turnserver) is not installed and scripts/ensure-coturn.sh could not install it")
    turn = Turn(free_tcp_and_udp_port(), secrets.token_hex(16), tmp_path / "turn.log")
    relay_low = 20000 + secrets.randbelow(20000)
    args = [
        binary,
        "-n",  # no configuration file: everything is here
        f"--listening-port={turn.port}",
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--min-port={relay_low}",
        f"--max-port={relay_low + 200}",
        "--allow-loopback-peers",
        "--no-tls",
        "--no-dtls",
        "--no-tcp-relay",
        "--fingerprint",
        "--use-auth-secret",
        f"--static-auth-secret={turn.secret}",
        "--realm=liveshow.test",
        "--no-cli",
        f"--pidfile={tmp_path / 'turn.pid'}",
        f"--db={tmp_path / 'turndb'}",
        f"--log-file={turn.log}",
        "--simple-log",
        "--verbose",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 20
        while not stun_answers(turn.port):
            assert proc.poll() is None, (
                f"turnserver exited: {turn.log.read_text() if turn.log.exists() else ''}"
            )
            assert time.monotonic() < deadline, "turnserver did not answer STUN"
            time.sleep(0.1)
        yield turn
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# ---------------------------------------------------------------- stages


def start_stage(tmp_path: Path, sqlite_url: str, **overrides: Any) -> tuple[LiveServer, Show]:
    app = create_app(make_settings(tmp_path, sqlite_url, publisher_grace_seconds=30.0, **overrides))
    add_test_pages(app)
    server = LiveServer(app).start()
    show, _ = make_show(app, "seller" + secrets.token_hex(3))
    return server, show


def go_live_and_watch(
    browser: Any, server: LiveServer, show: Show, force_relay: bool
) -> tuple[Any, Any, list[Any]]:
    contexts = []
    pages = []
    for grant in (True, False):
        context = browser.new_context()
        if grant:
            context.grant_permissions(["camera", "microphone"])
        context.add_init_script(f"window.__forceRelay = {'true' if force_relay else 'false'};" + RECORD_PEERS)
        contexts.append(context)
        pages.append(context.new_page())
    studio, viewer = pages
    studio.goto(f"{server.url}/test/studio/{show.id}")
    studio.wait_for_function("document.getElementById('studio-preview').videoWidth > 0")
    studio.get_by_role("button", name="Go live").click()
    studio.wait_for_function(
        "document.getElementById('studio-connection').textContent === 'connected'", timeout=30000
    )
    viewer.goto(f"{server.url}/test/show/{show.id}")
    wait_until(lambda: frames_decoded(viewer) > 0, timeout=30)
    return studio, viewer, contexts


def test_studio_and_player_make_their_peers_with_the_announced_servers(
    browser: Any, tmp_path: Path, sqlite_url: str
) -> None:
    secret = secrets.token_hex(8)
    # Nothing listens on these ports: the pages still connect directly; the servers must only be passed.
    stun, turn = f"stun:127.0.0.1:{free_port()}", f"turn:127.0.0.1:{free_port()}?transport=udp"
    server, show = start_stage(
        tmp_path,
        sqlite_url,
        ice_servers=(stun, turn),
        turn_secret=secret,
        # announced, so the server's own peers need not ask the (absent) STUN server
        ice_announced_address="127.0.0.1",
    )
    contexts: list[Any] = []
    try:
        studio, viewer, contexts = go_live_and_watch(browser, server, show, force_relay=False)
        for page in (studio, viewer):
            configs = page.evaluate("window.__peerConfigs")
            assert len(configs) >= 1
            servers = configs[0]["iceServers"]
            assert [s["urls"] for s in servers] == [stun, turn]
            assert "username" not in servers[0]
            assert valid_rest_credentials(servers[1], secret)
        studio_turn = studio.evaluate("window.__peerConfigs[0].iceServers[1].username")
        viewer_turn = viewer.evaluate("window.__peerConfigs[0].iceServers[1].username")
        assert studio_turn != viewer_turn  # fresh credentials for each peer
        # the Link parser copes with commas and escapes inside quoted credentials
        parsed = viewer.evaluate(
            """window.liveshowIce.fromLinkHeader('<stun:a.example>; rel="ice-server", <https://x>;'
               + ' rel="next", <turn:b.example?transport=udp>; rel="ice-server"; username="1:u,v";'
               + ' credential="p\\\\"w"; credential-type="password"')"""
        )
        assert parsed == [
            {"urls": "stun:a.example"},
            {"urls": "turn:b.example?transport=udp", "username": "1:u,v", "credential": 'p"w'},
        ]
    finally:
        for context in contexts:
            context.close()
        server.stop()


def test_pages_without_configured_servers_make_peers_with_none(
    browser: Any, tmp_path: Path, sqlite_url: str
) -> None:
    server, show = start_stage(tmp_path, sqlite_url)
    contexts: list[Any] = []
    try:
        studio, viewer, contexts = go_live_and_watch(browser, server, show, force_relay=False)
        for page in (studio, viewer):
            assert page.evaluate("window.__peerConfigs[0]") == {"iceServers": []}
    finally:
        for context in contexts:
            context.close()
        server.stop()


def test_chromium_plays_relay_only_through_coturn_with_time_limited_credentials(
    browser: Any, coturn: Turn, tmp_path: Path, sqlite_url: str
) -> None:
    server, show = start_stage(
        tmp_path,
        sqlite_url,
        ice_servers=(f"stun:127.0.0.1:{coturn.port}", f"turn:127.0.0.1:{coturn.port}?transport=udp"),
        turn_secret=coturn.secret,
        turn_ttl_seconds=300,
    )
    contexts: list[Any] = []
    try:
        # both pages relay-only: the studio publishes through coturn too
        _studio, viewer, contexts = go_live_and_watch(browser, server, show, force_relay=True)
        first = frames_decoded(viewer)
        wait_until(lambda: frames_decoded(viewer) > first + 10, timeout=15)
        pair = viewer.evaluate(SELECTED_PAIR)
        assert pair is not None and pair["local"] == "relay", pair
        config = viewer.evaluate("window.__peerConfigs[0]")
        assert valid_rest_credentials(config["iceServers"][1], coturn.secret)
        log = coturn.log.read_text(errors="replace") if coturn.log.exists() else ""
        user = config["iceServers"][1]["username"]
        assert user in log, "coturn never saw the viewer's time-limited username"
    finally:
        for context in contexts:
            context.close()
        server.stop()


def test_coturn_refuses_wrong_credentials_so_the_relay_check_means_something(coturn: Turn) -> None:
    # A bare Allocate without credentials is refused (401 challenge): relaying is not open to anyone.
    request = struct.pack("!HHI12s", 0x0003, 8, 0x2112A442, secrets.token_bytes(12))
    request += struct.pack("!HHI", 0x0019, 4, 17 << 24)  # REQUESTED-TRANSPORT: UDP
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(request, ("127.0.0.1", coturn.port))
        data = sock.recv(2048)
    assert data[:2] == b"\x01\x13"  # Allocate error response
    assert b"\x00\x09" in data  # ERROR-CODE attribute
