"""The room's wire protocol against a real server: handshake, frames, bad input, time sync."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from liveshow.chat.protocol import MAX_FRAME_BYTES, FrameTooBig, decode, encode_batch
from liveshow.errors import ValidationFailed
from liveshow.settings import Settings
from tests.conftest import LiveServer
from tests.roomkit import Peer, RoomEnv, ws_url


@pytest.fixture
def env(settings: Settings, live_server: LiveServer) -> Iterator[RoomEnv]:
    room_env = RoomEnv(settings, live_server.url)
    yield room_env
    room_env.db.close()


# ---------------------------------------------------------------- pure parts


def test_decode_accepts_a_typed_object() -> None:
    assert decode('{"type":"chat.send","id":"a1","text":"hi"}')["text"] == "hi"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "Malformed JSON"),
        ("[1,2]", "JSON object"),
        ('{"text":"no type"}', "Missing field: type"),
        ('{"type":5}', "Missing field: type"),
        ('{"type":"x","id":{"a":1}}', "Field id"),
        (b"\x00\x01", "Binary frames"),
        ("[" * 100_000, None),
    ],
)
def test_decode_refuses_bad_frames(raw: str | bytes, reason: str | None) -> None:
    with pytest.raises((ValidationFailed, FrameTooBig)) as info:
        decode(raw)
    if reason:
        assert reason in str(info.value)


def test_decode_refuses_oversized_frames() -> None:
    with pytest.raises(FrameTooBig):
        decode(json.dumps({"type": "chat.send", "text": "x" * MAX_FRAME_BYTES}))


def test_batch_encoding_joins_frames() -> None:
    assert json.loads(encode_batch(['{"a":1}', '{"b":2}'])) == {
        "type": "batch",
        "events": [{"a": 1}, {"b": 2}],
    }


# ---------------------------------------------------------------- handshake


async def test_snapshot_on_fresh_join(env: RoomEnv) -> None:
    peer, snap = await env.join_snapshot(env.alice)
    assert snap["seq"] == 0 and snap["messages"] == [] and snap["pinned"] is None
    assert snap["you"] == {"user_id": env.alice.id, "role": "viewer", "banned": False, "muted_until_ms": 0}
    assert "blocked_words" not in snap  # only staff see the list
    seller, seller_snap = await env.join_snapshot(env.seller)
    assert seller_snap["you"]["role"] == "seller" and seller_snap["blocked_words"] == []
    await peer.close()
    await seller.close()


async def test_hello_frame_resumes_without_query(env: RoomEnv) -> None:
    writer, _ = await env.join_snapshot(env.alice)
    await writer.request({"type": "chat.send", "text": "one"})
    await writer.request({"type": "chat.send", "text": "two"})
    ws = await websockets.connect(ws_url(env.url, env.show_id, last_seq=None))
    peer = Peer(ws)
    await peer.send({"type": "hello", "last_seq": 1})
    frame = await peer.next()
    assert (frame["type"], frame["seq"], frame["text"]) == ("chat.message", 2, "two")
    late = await peer.request({"type": "hello", "last_seq": 0})
    assert late["type"] == "error" and "first frame" in late["reason"]
    await peer.close()
    await writer.close()


async def test_no_hello_gets_a_snapshot_after_a_short_wait(env: RoomEnv) -> None:
    ws = await websockets.connect(ws_url(env.url, env.show_id, last_seq=None))
    peer = Peer(ws)
    assert (await peer.next(timeout=5))["type"] == "snapshot"
    await peer.close()


async def test_bad_query_last_seq_is_answered_and_a_snapshot_sent(env: RoomEnv) -> None:
    peer = await env.join(env.alice, last_seq="-3")
    assert (await peer.next())["type"] == "snapshot"
    error = await peer.next()
    assert error["type"] == "error" and "last_seq" in error["reason"]
    await peer.close()


async def test_foreign_origin_is_refused(env: RoomEnv) -> None:
    with pytest.raises(InvalidStatus) as info:
        await Peer.connect(env.url, env.show_id, env.cookie(env.alice), origin="https://evil.example")
    assert info.value.response.status_code == 403
    same = await Peer.connect(env.url, env.show_id, origin=env.url)
    assert (await same.next())["type"] == "snapshot"
    await same.close()


async def test_unknown_show_closes_with_4404(env: RoomEnv) -> None:
    peer = await Peer.connect(env.url, 999_999)
    assert (await peer.next())["code"] == "not_found"
    with pytest.raises(ConnectionClosed) as info:
        await peer.next()
    assert info.value.rcvd is not None and info.value.rcvd.code == 4404


# ---------------------------------------------------------------- bad frames


async def test_bad_frames_get_error_frames_with_reasons(env: RoomEnv) -> None:
    peer, _ = await env.join_snapshot(env.alice)
    await peer.ws.send("{oops")
    assert (await peer.until("error"))["reason"] == "Malformed JSON."
    await peer.ws.send(b"\x01\x02")
    assert "Binary" in (await peer.until("error"))["reason"]
    await peer.ws.send('{"id": "x"}')
    assert "type" in (await peer.until("error"))["reason"]
    unknown = await peer.request({"type": "no.such.thing"})
    assert unknown["code"] == "invalid" and "Unknown message type" in unknown["reason"]
    missing = await peer.request({"type": "chat.send"})
    assert missing["reason"] == "Missing field: text." and missing["field"] == "text"
    wrong = await peer.request({"type": "chat.send", "text": 42})
    assert "must be a string" in wrong["reason"]
    bad_kind = await peer.request({"type": "reaction", "kind": "poop"})
    assert "Unknown reaction" in bad_kind["reason"]
    # Still connected and working after all that.
    assert (await peer.request({"type": "ping"}))["type"] == "pong"
    await peer.close()


async def test_oversized_frame_closes_with_1009(env: RoomEnv) -> None:
    peer, _ = await env.join_snapshot(env.alice)
    await peer.send({"type": "chat.send", "text": "x" * (MAX_FRAME_BYTES + 10)})
    with pytest.raises(ConnectionClosed) as info:
        await peer.until("never")
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_time_sync_reply_is_close_to_the_server_clock(env: RoomEnv) -> None:
    peer, _ = await env.join_snapshot(None)
    before = time.time() * 1000
    reply = await peer.request({"type": "time"})
    after = time.time() * 1000
    assert reply["type"] == "time" and before - 5 <= reply["server_ms"] <= after + 5
    await peer.close()


async def test_room_handlers_get_unknown_types(env: RoomEnv, live_server: LiveServer) -> None:
    context = live_server.app.state.ctx
    calls: list[tuple[int, int | None, str]] = []

    async def bid(show_id: int, user: object, message: dict[str, object]) -> dict[str, object]:
        calls.append((show_id, getattr(user, "id", None), str(message["type"])))
        if message.get("amount_cents", 0) == 0:
            raise ValidationFailed("Bid too low.")
        return {"type": "bid.ok"}

    context.room_handlers["bid"] = bid
    peer, _ = await env.join_snapshot(env.alice)
    assert (await peer.request({"type": "bid", "amount_cents": 500}))["type"] == "bid.ok"
    refused = await peer.request({"type": "bid", "amount_cents": 0})
    assert refused["type"] == "error" and refused["reason"] == "Bid too low."
    assert calls == [(env.show_id, env.alice.id, "bid")] * 2
    await peer.close()
