"""Hostile input and abuse (issue #16): sign-in and sign-up throttled before any password is hashed,
WHIP/WHEP and room connects limited per address, bids per account, WHEP sessions capped per show
and per address, room sockets capped per user and show. Small limits here; defaults in settings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from liveshow.accounts import service as accounts
from liveshow.accounts.service import create_user, issue_token
from liveshow.app import create_app
from liveshow.errors import RateLimited
from liveshow.shows.models import Show
from liveshow.signaling.caps import ShowFull, WhepCaps
from liveshow.signaling.client import Watcher, publish
from tests.conftest import LiveServer, make_settings
from tests.helpers import form_csrf
from tests.test_social_support import act_as, app_ctx, make_user

PASSWORD = "correct horse battery"


def limited_client(tmp_path: Path, sqlite_url: str, **limits: Any) -> TestClient:
    return TestClient(create_app(make_settings(tmp_path, sqlite_url, **limits)), base_url="http://127.0.0.1")


def _signin(client: TestClient, username: str, password: str, **headers: str) -> httpx.Response:
    token = form_csrf(client, "/signin")
    data = {"username": username, "password": password, "csrf_token": token}
    return client.post("/signin", data=data, headers=headers, follow_redirects=False)


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each argon2 verification the sign-in makes."""
    seen: list[str] = []
    real = accounts.verify_password

    def counting(stored: str, password: str) -> bool:
        seen.append(password)
        return real(stored, password)

    monkeypatch.setattr(accounts, "verify_password", counting)
    return seen


# ---------------------------------------------------------------- sign-in and sign-up


def test_signin_is_throttled_per_address_before_the_hash(
    tmp_path: Path, sqlite_url: str, hashes: list[str]
) -> None:
    with limited_client(tmp_path, sqlite_url, limit_signin_address="3/60") as client:
        for n in range(3):
            assert _signin(client, f"guess{n}", "wrong password").status_code == 401
        assert len(hashes) == 3
        refused = _signin(client, "guess9", "wrong password")
        assert refused.status_code == 429
        assert len(hashes) == 3  # refused before argon2 ran
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "Too many sign-in attempts; try again in" in refused.text
        assert 'value="guess9"' in refused.text  # the form comes back, with the reason


def test_signin_is_throttled_per_account_from_any_address(
    tmp_path: Path, sqlite_url: str, hashes: list[str]
) -> None:
    settings = make_settings(tmp_path, sqlite_url, limit_signin_account="2/60")
    app = create_app(settings)
    clients = [
        TestClient(app, base_url="http://127.0.0.1", client=(f"198.51.100.{n}", 5000)) for n in range(1, 4)
    ]
    with clients[0], clients[1], clients[2]:
        make_user(app, "carol")
        assert _signin(clients[0], "Carol", "wrong password").status_code == 401
        assert _signin(clients[1], "carol ", "wrong password").status_code == 401
        refused = _signin(clients[2], "carol", PASSWORD)  # even the right password waits now
        assert refused.status_code == 429 and len(hashes) == 2
        # Another account is unaffected.
        assert _signin(clients[2], "dave", "wrong password").status_code == 401


def test_a_successful_signin_does_not_refill_the_address_budget(
    tmp_path: Path, sqlite_url: str, hashes: list[str]
) -> None:
    with limited_client(tmp_path, sqlite_url, limit_signin_address="3/60") as client:
        make_user(client.app, "mallory")  # type: ignore[arg-type]
        assert _signin(client, "victim1", "guess").status_code == 401
        assert _signin(client, "mallory", PASSWORD).status_code == 303  # the attacker's own account
        client.post("/signout", data={"csrf_token": form_csrf(client)})
        assert _signin(client, "victim2", "guess").status_code == 401
        assert _signin(client, "victim3", "guess").status_code == 429


def test_signup_is_limited_per_address(tmp_path: Path, sqlite_url: str) -> None:
    with limited_client(tmp_path, sqlite_url, limit_signup_address="2/3600") as client:
        for n in range(2):
            client.cookies.clear()
            token = form_csrf(client, "/signup")
            data = {"username": f"new{n}", "password": PASSWORD, "csrf_token": token}
            assert client.post("/signup", data=data, follow_redirects=False).status_code == 303
        client.cookies.clear()
        token = form_csrf(client, "/signup")
        data = {"username": "new9", "password": PASSWORD, "csrf_token": token}
        refused = client.post("/signup", data=data, follow_redirects=False)
        assert refused.status_code == 429 and "retry-after" in refused.headers
        assert "Too many accounts made from this address" in refused.text


def test_forwarded_for_counts_only_through_a_trusted_proxy(tmp_path: Path, sqlite_url: str) -> None:
    for trusted, expected in (((), [401, 401, 429]), (("10.0.0.0/8",), [401, 401, 401])):
        settings = make_settings(
            tmp_path, sqlite_url, limit_signin_address="2/60", trusted_proxies=trusted
        ).with_overrides(data_dir=tmp_path / str(len(trusted)))
        app = create_app(settings)
        with TestClient(app, base_url="http://127.0.0.1", client=("10.0.0.5", 4000)) as proxy:
            got = [
                _signin(proxy, "x", "guess", **{"X-Forwarded-For": f"1.1.1.1, 203.0.113.{n}"}).status_code
                for n in range(3)
            ]
        assert got == expected, trusted


# ---------------------------------------------------------------- WHIP, WHEP, bids over HTTP


def test_whep_and_whip_posts_are_limited_per_address(tmp_path: Path, sqlite_url: str) -> None:
    with limited_client(tmp_path, sqlite_url, limit_whep_address="2/60", limit_whip_address="1/60") as client:
        offer = {"content-type": "application/sdp"}
        for _ in range(2):
            assert client.post("/whep/999", content=b"v=0\r\n", headers=offer).status_code in (400, 404)
        refused = client.post("/whep/999", content=b"v=0\r\n", headers=offer)
        assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["access-control-allow-origin"] == "*"  # a browser can read why
        whip = {**offer, "authorization": "Bearer nope"}
        assert client.post("/whip/999", content=b"v=0\r\n", headers=whip).status_code != 429
        assert client.post("/whip/999", content=b"v=0\r\n", headers=whip).status_code == 429
        # No credentials at all: still 401, the header check comes first and costs nothing more.
        assert client.post("/whip/999", content=b"v=0\r\n", headers=offer).status_code == 401


def test_bids_and_claims_are_limited_per_account(tmp_path: Path, sqlite_url: str) -> None:
    with limited_client(tmp_path, sqlite_url, limit_bid_account="2/60") as client:
        app: Any = client.app
        with app_ctx(app).db.session() as session:
            bidder = create_user(session, "bidder", PASSWORD)
            token = issue_token(session, bidder)
        auth = {"authorization": f"Bearer {token}"}
        url = "/api/shows/999/auction"
        for kind in ("bid", "claim"):
            assert client.post(url, json={"type": kind, "lot_id": 1}, headers=auth).status_code != 429
        refused = client.post(url, json={"type": "bid", "lot_id": 1}, headers=auth)
        assert refused.status_code == 429 and refused.json()["retry_after_ms"] > 0
        assert "Too many bids" in refused.json()["reason"]
        # Asking for the lot is not a bid.
        assert client.post(url, json={"type": "lot.state"}, headers=auth).status_code != 429


# ---------------------------------------------------------------- room sockets


def _live_show(app: Any) -> int:
    with app_ctx(app).db.session() as session:
        seller = create_user(session, "seller", PASSWORD)
        show = Show(seller_id=seller.id or 0, title="Sale", stream_key="k", state="live")
        session.add(show)
        session.commit()
        assert show.id is not None
        return show.id


def _first_frame(ws: Any) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.receive_text())
    return frame


def test_room_sockets_are_capped_per_user_and_show(tmp_path: Path, sqlite_url: str) -> None:
    with limited_client(tmp_path, sqlite_url, max_room_sockets_per_user=2) as client:
        app: Any = client.app
        show_id = _live_show(app)
        act_as(client, make_user(app, "ann"))
        url = f"/ws/shows/{show_id}?last_seq="
        with client.websocket_connect(url) as one, client.websocket_connect(url) as two:
            assert _first_frame(one)["type"] == "snapshot" and _first_frame(two)["type"] == "snapshot"
            with client.websocket_connect(url) as three:
                frame = _first_frame(three)
                assert frame["type"] == "error" and frame["code"] == "too_many_sockets"
                assert "At most 2 open connections" in frame["reason"]
                with pytest.raises(WebSocketDisconnect) as info:
                    three.receive_text()
                assert info.value.code == 1013
            client.cookies.clear()  # anonymous viewers are not capped per user
            with client.websocket_connect(url) as anon:
                assert _first_frame(anon)["type"] == "snapshot"
        act_as(client, make_user(app, "bob"))
        with client.websocket_connect(url) as again:  # others, and the user once sockets close
            assert _first_frame(again)["type"] == "snapshot"


def test_room_connects_are_rate_limited_per_address(tmp_path: Path, sqlite_url: str) -> None:
    with limited_client(tmp_path, sqlite_url, limit_socket_address="2/60") as client:
        show_id = _live_show(client.app)
        url = f"/ws/shows/{show_id}?last_seq="
        for _ in range(2):
            with client.websocket_connect(url) as ws:
                assert _first_frame(ws)["type"] == "snapshot"
        with client.websocket_connect(url) as ws:
            frame = _first_frame(ws)
            assert frame["code"] == "rate_limited" and frame["retry_after_ms"] > 0
            assert "Too many room connections" in frame["reason"]
            with pytest.raises(WebSocketDisconnect) as info:
                ws.receive_text()
            assert info.value.code == 1013


def test_room_connects_are_rate_limited_per_account(tmp_path: Path, sqlite_url: str) -> None:
    with limited_client(tmp_path, sqlite_url, limit_socket_account="1/60") as client:
        app: Any = client.app
        show_id = _live_show(app)
        url = f"/ws/shows/{show_id}?last_seq="
        act_as(client, make_user(app, "ann"))
        with client.websocket_connect(url) as ws:
            assert _first_frame(ws)["type"] == "snapshot"
        with client.websocket_connect(url) as ws:
            assert _first_frame(ws)["code"] == "rate_limited"
        act_as(client, make_user(app, "bob"))  # same address, another account
        with client.websocket_connect(url) as ws:
            assert _first_frame(ws)["type"] == "snapshot"


def test_reactions_are_counted_per_account_not_per_socket(tmp_path: Path, sqlite_url: str) -> None:
    with limited_client(tmp_path, sqlite_url, limit_reaction_sender="3/60") as client:
        app: Any = client.app
        show_id = _live_show(app)
        act_as(client, make_user(app, "ann"))
        url = f"/ws/shows/{show_id}?last_seq="
        with client.websocket_connect(url) as one, client.websocket_connect(url) as two:
            _first_frame(one), _first_frame(two)
            for n in range(3):
                (one if n % 2 else two).send_json({"type": "reaction", "kind": "clap", "id": n})
            two.send_json({"type": "reaction", "kind": "clap", "id": 9})
            frames = [_first_frame(two) for _ in range(3)]
            refused = next(f for f in frames if f.get("reply_to") == 9)
            assert refused["code"] == "rate_limited"


# ---------------------------------------------------------------- WHEP caps


def test_whep_caps_reserve_and_reclaim() -> None:
    caps = WhepCaps(per_show=3, per_address=2)
    alive: set[str] = set()
    a1 = caps.reserve(1, "a", alive.__contains__)
    a2 = caps.reserve(1, "a", alive.__contains__)  # reserved while its offer is answered
    with pytest.raises(RateLimited, match="At most 2 players per address") as info:
        caps.reserve(1, "a", alive.__contains__)
    assert info.value.details["retry_after_ms"] > 0
    caps.reserve(2, "a", alive.__contains__)  # per show
    caps.confirm(1, a1, "s1")
    caps.release(1, a2)  # its offer failed
    alive.add("s1")
    b1 = caps.reserve(1, "b", alive.__contains__)
    caps.reserve(1, "a", alive.__contains__)
    with pytest.raises(ShowFull) as full:
        caps.reserve(1, "c", alive.__contains__)
    assert full.value.status == 503
    alive.discard("s1")  # that viewer left: its slot comes back
    caps.confirm(1, b1, "s2")
    assert caps.reserve(1, "c", alive.__contains__)
    assert WhepCaps(0, 0).reserve(1, "a", lambda s: True)  # 0: no cap


def test_a_whep_slot_is_given_back_unless_confirmed() -> None:
    caps = WhepCaps(per_show=1, per_address=1)
    with pytest.raises(RuntimeError), caps.slot(1, "a", lambda s: True):
        raise RuntimeError("the offer failed")
    with caps.slot(1, "a", lambda s: True):
        pass  # answered elsewhere (307): nothing kept
    assert caps.count(1) == 0
    with caps.slot(1, "a", lambda s: True) as slot:
        slot.confirm("s1")
    assert caps.count(1) == 1
    with pytest.raises(ShowFull):
        caps.reserve(1, "b", lambda s: True)


@pytest.fixture
def capped_stage(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[LiveServer, Show]]:
    settings = make_settings(tmp_path, sqlite_url, max_whep_per_address=2, max_whep_per_show=3)
    app = create_app(settings)
    server = LiveServer(app).start()
    with app_ctx(app).db.session() as session:
        seller = create_user(session, "seller", PASSWORD)
        show = Show(seller_id=seller.id or 0, title="Sale", stream_key="stream-key-1")
        session.add(show)
        session.commit()
        session.refresh(show)
    yield server, show
    server.stop()


async def test_whep_sessions_are_capped_per_address(capped_stage: tuple[LiveServer, Show]) -> None:
    server, show = capped_stage
    pub, _location = await publish(f"{server.url}/whip/{show.id}", show.stream_key)
    whep = f"{server.url}/whep/{show.id}"
    watchers: list[Watcher] = []
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while True:  # the show is watchable once the publisher's codecs are known
            watcher = Watcher()
            try:
                await watcher.watch(whep)
                watchers.append(watcher)
                break
            except RuntimeError as exc:
                await watcher.close(delete=False)
                assert "409" in str(exc) and asyncio.get_running_loop().time() < deadline, exc
                await asyncio.sleep(0.2)
        second = Watcher()
        await second.watch(whep)
        watchers.append(second)
        third = Watcher()
        with pytest.raises(RuntimeError, match="429"):
            await third.watch(whep)
        await third.close(delete=False)
        await watchers.pop().close()  # DELETE frees the slot
        again = Watcher()
        await again.watch(whep)
        watchers.append(again)
    finally:
        for watcher in watchers:
            await watcher.close()
        await pub.close()
