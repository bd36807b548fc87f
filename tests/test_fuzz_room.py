"""Fuzzing the show room (WebSocket /ws/shows/{id}) with Hypothesis: every message type the room
answers (the chat's HANDLERS and the handlers other parts register in context.room_handlers: claim,
bid, lot.*, giveaway.enter), sent by the seller, a viewer and an anonymous socket, as mutations of a
valid message or as hostile fields. After each input the answer must be a success or an error frame
with a reason (never code "internal"), and the socket must still answer a ping; after each run the
show must still be healthy (/healthz and /readyz 200, a new viewer's chat message and claim go through).

Runs against a real uvicorn; the number of examples is LIVESHOW_FUZZ_EXAMPLES (tests/fuzzkit.py)."""

from __future__ import annotations

import json
import secrets
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from liveshow.accounts.models import User
from liveshow.app import create_app
from liveshow.chat.handlers import HANDLERS
from liveshow.chat.protocol import CLOSE_TOO_BIG, MAX_FRAME_BYTES
from liveshow.chat.service import REACTION_KINDS
from liveshow.db import Database
from tests.auction_fixtures import World, make_world
from tests.fuzzkit import FUZZ_SETTINGS, ServerProcess, SyncPeer, dumps, json_values, mutated, next_id
from tests.roomkit import add_user, session_cookie

# A failing example can be a 40 kB string; Hypothesis warns when it prints one.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")


class FuzzRoom:
    """A served app with a live show, its seller and a viewer connected, and a lineup to claim from."""

    def __init__(self, tmp: Path, sqlite_template: Path) -> None:
        db_path = tmp / "liveshow.db"
        db_path.write_bytes(sqlite_template.read_bytes())
        self.server = ServerProcess(tmp, f"sqlite:///{db_path}")
        self.settings = self.server.settings
        self.url = self.server.url
        self.db = Database(self.settings.database_url)
        self.world: World = make_world(self.db, viewers=2, quantities=(1, 5, 10_000))
        self.show_id = self.world.show_id
        self.users: dict[str, User | None] = {
            "seller": self.world.seller,
            "viewer": self.world.viewers[0],
            "anonymous": None,
        }
        self.peers = {who: self.join(user) for who, user in self.users.items()}

    def join(self, user: User | None) -> SyncPeer:
        cookie = session_cookie(self.settings, user) if user is not None else None
        return SyncPeer(self.url, self.show_id, cookie)

    def room_types(self) -> list[str]:
        # The same app as the server process builds, never started: only its handler tables are read.
        app = create_app(self.settings)
        types = sorted({*HANDLERS, *app.state.ctx.room_handlers})
        app.state.ctx.db.close()
        return types

    def close(self) -> None:
        for peer in self.peers.values():
            peer.close()
        self.server.stop()
        self.db.close()


@pytest.fixture(scope="module")
def room(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[FuzzRoom]:
    env = FuzzRoom(tmp_path_factory.mktemp("fuzz-room"), sqlite_template)
    yield env
    env.close()


def valid_messages(room: FuzzRoom) -> dict[str, dict[str, Any]]:
    """One valid message of every type the room answers (the seeds the fuzzer mutates)."""
    w = room.world
    viewer = w.viewers[1]
    listing = w.listings[2].id
    return {
        "chat.send": {"text": "hello there"},
        "reaction": {"kind": REACTION_KINDS[0]},
        "chat.delete": {"message_id": 1},
        "chat.pin": {"message_id": 1},
        "mod.mute": {"user_id": viewer.id, "minutes": 1},
        "mod.unmute": {"user_id": viewer.id},
        "mod.ban": {"username": viewer.username, "reason": "spam"},
        "mod.unban": {"username": viewer.username},
        "mod.appoint": {"user_id": viewer.id},
        "mod.revoke": {"user_id": viewer.id},
        "mod.blocked_words": {"add": ["spoiler"], "remove": []},
        "mod.slow_mode": {"seconds": 0},
        "mod.log": {},
        "presence.list": {},
        "time": {},
        "ping": {},
        "hello": {"last_seq": 0},
        "claim": {"key": "k-" + secrets.token_hex(6), "quantity": 1, "lot_no": 1},
        "bid": {"key": "k-" + secrets.token_hex(6), "max_cents": 2000, "lot_no": 1},
        "lot.state": {},
        "lot.open": {
            "listing_id": listing,
            "mode": "auction",
            "start_cents": 100,
            "duration_s": 30,
            "sudden_death": False,
        },
        "lot.close": {},
        "lot.next": {"mode": "claim", "price_cents": 500, "quantity": 2, "per_buyer_limit": 1},
        "lot.cancel": {},
        "giveaway.enter": {},
    }


def test_every_room_type_has_a_seed(room: FuzzRoom) -> None:
    """A type added to the room without a seed here would escape the fuzzer."""
    assert sorted(valid_messages(room)) == room.room_types()


def frames_until_pong(peer: SyncPeer) -> list[dict[str, Any]]:
    """Send a ping and return what arrived before the pong; every error among it has a code (never
    internal) and a reason. The pong proves the socket is still open and the room still answers."""
    ping_id = next_id("p")
    peer.send_raw(json.dumps({"type": "ping", "id": ping_id}))
    seen: list[dict[str, Any]] = []
    for frame in peer.frames(20.0):
        if frame.get("reply_to") == ping_id:
            assert frame["type"] == "pong", frame
            return seen
        if frame.get("type") == "error":
            assert frame.get("code") != "internal", f"internal error: {frame}"
            assert isinstance(frame.get("code"), str) and frame["code"], frame
            assert isinstance(frame.get("reason"), str) and frame["reason"], frame
        seen.append(frame)
    raise AssertionError("unreachable")


def check_answer(room: FuzzRoom, who: str, raw: str, msg_id: str) -> None:
    """One fuzzed frame is answered (a success, or an error with a reason) and the socket stays open."""
    peer = room.peers[who]
    if len(raw.encode()) > MAX_FRAME_BYTES:
        # The contract for an oversized frame is a close with 1009, not an answer; then a new socket.
        peer.send_raw(raw)
        with pytest.raises(ConnectionClosed) as closed:
            peer.until(lambda f: False, timeout=20.0)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_TOO_BIG, closed.value
        room.peers[who] = room.join(room.users[who])
        return
    peer.send_raw(raw)
    try:
        seen = frames_until_pong(peer)
    except AssertionError as exc:
        raise AssertionError(f"{exc} after {raw[:300]!r}") from None
    # The answer carries reply_to, unless the frame was refused as a whole before its id was read (too
    # deep, NaN where the reader allows only JSON's numbers): then it is an error frame without one.
    answered = any(
        f.get("reply_to") == msg_id or (f.get("type") == "error" and "reply_to" not in f) for f in seen
    )
    assert answered, f"no answer to {raw[:300]!r} (of {len(raw)} characters); saw {seen}"


@st.composite
def room_inputs(draw: st.DrawFn, seeds: dict[str, dict[str, Any]]) -> tuple[str, str, str]:
    """(who, raw frame, its id): a mutated valid message or a known type with hostile fields."""
    kind = draw(st.sampled_from(sorted(seeds)))
    body = draw(
        st.one_of(
            mutated(seeds[kind]),
            st.dictionaries(
                st.sampled_from([*seeds[kind], "text", "user_id", "key"]), json_values, max_size=5
            ),
        )
    )
    msg_id = next_id("f")
    body = {**body, "type": kind, "id": msg_id}
    who = draw(st.sampled_from(["seller", "seller", "viewer", "anonymous"]))
    return who, dumps(body), msg_id


def check_healthy(room: FuzzRoom) -> None:
    """/healthz and /readyz answer 200; a new viewer's chat message is delivered and their claim on a
    freshly opened lot is accepted."""
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(room.url + path, timeout=20) as resp:
            assert resp.status == 200, path
    seller = room.peers["seller"]
    # Undo what the fuzzer may have legitimately changed: slow mode, blocked words, an open lot.
    assert seller.request({"type": "mod.slow_mode", "seconds": 0})["type"] == "chat.slow_mode"
    words = seller.request({"type": "mod.blocked_words"})["words"]
    seller.request({"type": "mod.blocked_words", "remove": words})
    seller.request({"type": "lot.close"})
    seller.request({"type": "lot.cancel"})
    opened = seller.request(
        {"type": "lot.open", "listing_id": room.world.listings[2].id, "mode": "claim", "quantity": 5}
    )
    # An auction the fuzzer opened and bid on runs until its clock ends (the host can neither close nor
    # cancel it): then the new viewer's bid on it must go through instead of a claim.
    lot = None if opened.get("ok") else seller.request({"type": "lot.state"})["lot"]
    assert opened.get("ok") is True or (lot and lot["kind"] == "auction" and lot["bids"]), opened
    buyer = add_user(room.db, f"buyer{secrets.token_hex(4)}")
    peer = room.join(buyer)
    try:
        text = f"still here {secrets.token_hex(4)}"
        sent = peer.request({"type": "chat.send", "text": text})
        assert sent["type"] == "chat.sent", sent
        peer.until(lambda f: f.get("type") == "chat.message" and f.get("text") == text)
        key = "k-" + secrets.token_hex(8)
        if lot is None:
            answer = peer.request({"type": "claim", "key": key, "quantity": 1})
        else:
            answer = peer.request({"type": "bid", "key": key, "max_cents": lot["next_min_cents"]})
        assert answer["type"] in ("claim.result", "bid.result") and answer["ok"] is True, answer
    finally:
        peer.close()


def test_room_answers_hostile_messages_and_stays_healthy(room: FuzzRoom) -> None:
    seeds = valid_messages(room)

    @FUZZ_SETTINGS
    @given(room_inputs(seeds))
    def fuzz(example: tuple[str, str, str]) -> None:
        who, raw, msg_id = example
        check_answer(room, who, raw, msg_id)

    fuzz()
    check_healthy(room)


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 5000 + "]" * 5000,
        '{"type":"chat.send","text":' + "[" * 3000 + "]" * 3000 + "}",
        '{"type":"bid","key":"k-12345678","max_cents":NaN}',
        '{"type":"bid","key":"k-12345678","max_cents":Infinity}',
        '{"type":"claim","key":"k-12345678","quantity":1e400}',
        '{"type":"claim","key":"k-12345678","quantity":' + "9" * 4000 + "}",
        '{"type":"chat.send","text":"x\\ud800"}',  # found by the fuzzer: was code internal
        '{"type":"\\u202e' + "x" * 39 + '"}',
    ],
)
def test_room_answers_malformed_frames(room: FuzzRoom, raw: str) -> None:
    """Frames a JSON library would not write: answered with an error or a success, socket kept open."""
    peer = room.peers["viewer"]
    peer.send_raw(raw)
    seen = frames_until_pong(peer)
    assert seen, "no answer"  # an error with a reason, or (NaN, a cleaned surrogate) a success


@pytest.mark.parametrize(
    "message",
    [
        {"type": "mod.unban", "user_id": 2**64},
        {"type": "mod.mute", "user_id": -(2**63) - 1},
        {"type": "mod.appoint", "user_id": 10**30},
        {"type": "chat.delete", "message_id": 2**63},
        {"type": "chat.pin", "message_id": 2**70},
    ],
)
def test_room_refuses_ids_beyond_64_bits(room: FuzzRoom, message: dict[str, Any]) -> None:
    """Found by the fuzzer: an id no database column can hold reached the database (OverflowError on
    SQLite) and the seller was answered code internal instead of "invalid"."""
    reply = room.peers["seller"].request(message)
    assert reply["type"] == "error" and reply["code"] == "invalid", reply
    assert "between" in reply["reason"], reply
