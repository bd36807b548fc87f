"""Moderation: who may moderate, delete, mute, ban, blocked words, slow mode, and the log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import col, select

from liveshow.chat.models import ChatBan, ChatMessage, ModerationAction, Moderator
from liveshow.settings import Settings
from tests.conftest import LiveServer
from tests.roomkit import RoomEnv, add_show


@pytest.fixture
def env(settings: Settings, live_server: LiveServer) -> Iterator[RoomEnv]:
    room_env = RoomEnv(settings, live_server.url)
    yield room_env
    room_env.db.close()


def actions(env: RoomEnv) -> list[tuple[str, int | None, int | None]]:
    with env.db.session() as session:
        rows = session.exec(select(ModerationAction).order_by(col(ModerationAction.id))).all()
        return [(r.action, r.actor_id, r.target_user_id) for r in rows]


async def test_viewer_cannot_moderate(env: RoomEnv) -> None:
    alice, _ = await env.join_snapshot(env.alice)
    bob, _ = await env.join_snapshot(env.bob)
    sent = await bob.request({"type": "chat.send", "text": "mine"})
    attempts = [
        {"type": "chat.delete", "message_id": sent["message_id"]},
        {"type": "chat.pin", "message_id": sent["message_id"]},
        {"type": "mod.mute", "user_id": env.bob.id, "minutes": 5},
        {"type": "mod.ban", "user_id": env.bob.id},
        {"type": "mod.blocked_words", "add": ["x"]},
        {"type": "mod.slow_mode", "seconds": 10},
        {"type": "mod.log"},
        {"type": "mod.appoint", "user_id": env.alice.id},
    ]
    for attempt in attempts:
        reply = await alice.request(attempt)
        assert reply["type"] == "error" and reply["code"] in ("not_moderator", "forbidden"), attempt
    anon, _ = await env.join_snapshot(None)
    assert (await anon.request({"type": "mod.ban", "user_id": env.bob.id}))["code"] == "not_authenticated"
    assert actions(env) == []
    with env.db.session() as session:
        assert session.exec(select(ChatMessage)).one().deleted_at is None
    for peer in (alice, bob, anon):
        await peer.close()


async def test_seller_appoints_a_moderator_who_deletes(env: RoomEnv) -> None:
    seller, _ = await env.join_snapshot(env.seller)
    alice, _ = await env.join_snapshot(env.alice)
    bob, _ = await env.join_snapshot(env.bob)
    appointed = await seller.request({"type": "mod.appoint", "username": "alice"})
    assert appointed["appointed"] is True and appointed["user_id"] == env.alice.id
    await alice.until("moderation.moderator")
    spam = await bob.request({"type": "chat.send", "text": "buy followers here"})
    assert (await alice.request({"type": "chat.send", "text": "hi"}))["type"] == "chat.sent"
    assert (await bob.until(lambda f: f.get("text") == "hi"))["role"] == "moderator"
    deleted = await alice.request({"type": "chat.delete", "message_id": spam["message_id"]})
    assert deleted["type"] == "chat.deleted"
    assert (await bob.until("chat.deleted"))["message_id"] == spam["message_id"]
    again = await alice.request({"type": "chat.delete", "message_id": spam["message_id"]})
    assert again["code"] == "not_found"
    # A moderator cannot appoint, nor act on the seller.
    assert (await alice.request({"type": "mod.appoint", "user_id": env.bob.id}))["code"] == "forbidden"
    assert (await alice.request({"type": "mod.ban", "user_id": env.seller.id}))["code"] == "forbidden"
    _, snap = await env.join_snapshot(None)
    assert [m["text"] for m in snap["messages"]] == ["hi"]  # deleted ones are not replayed
    assert snap["moderators"] == [env.alice.id]
    assert actions(env) == [
        ("appoint", env.seller.id, env.alice.id),
        ("delete", env.alice.id, env.bob.id),
    ]
    await seller.request({"type": "mod.revoke", "user_id": env.alice.id})
    await alice.until(lambda f: f.get("type") == "moderation.moderator" and not f["appointed"])
    assert (await alice.request({"type": "mod.log"}))["code"] == "not_moderator"
    with env.db.session() as session:
        assert session.exec(select(Moderator)).all() == []
    for peer in (seller, alice, bob):
        await peer.close()


async def test_mute_stops_writing_and_unmute_restores(env: RoomEnv) -> None:
    seller, _ = await env.join_snapshot(env.seller)
    bob, _ = await env.join_snapshot(env.bob)
    alice, _ = await env.join_snapshot(env.alice)
    muted = await seller.request({"type": "mod.mute", "user_id": env.bob.id, "minutes": 10})
    assert muted["until_ms"] > 0
    note = await bob.until("moderation.muted")  # the muted user is told; other viewers are not
    assert note["user_id"] == env.bob.id
    refused = await bob.request({"type": "chat.send", "text": "hello?"})
    assert refused["code"] == "muted"
    await alice.nothing("moderation.muted", 0.3)
    bad = await seller.request({"type": "mod.mute", "user_id": env.bob.id, "minutes": 100_000})
    assert bad["code"] == "invalid"
    assert (await seller.request({"type": "mod.mute", "user_id": 987654}))["code"] == "not_found"
    assert (await seller.request({"type": "mod.mute"}))["code"] == "invalid"
    # A fresh join (state reloaded from the DB if the room reopened) still knows.
    _, snap = await env.join_snapshot(env.bob)
    assert snap["you"]["muted_until_ms"] == muted["until_ms"]
    await seller.request({"type": "mod.unmute", "user_id": env.bob.id})
    await bob.until(lambda f: f.get("type") == "moderation.muted" and f["until_ms"] == 0)
    assert (await bob.request({"type": "chat.send", "text": "back"}))["type"] == "chat.sent"
    assert [a[0] for a in actions(env)] == ["mute", "unmute"]
    for peer in (seller, bob, alice):
        await peer.close()


async def test_ban_spans_the_sellers_shows(env: RoomEnv) -> None:
    other_show = add_show(env.db, env.seller, title="Second show")
    seller, _ = await env.join_snapshot(env.seller)
    bob, _ = await env.join_snapshot(env.bob)
    bob_elsewhere = await env.join(env.bob, show_id=other_show)
    await bob_elsewhere.until("snapshot")
    await seller.request({"type": "mod.ban", "user_id": env.bob.id, "reason": "spam"})
    assert (await bob.until("moderation.banned"))["banned"] is True
    await bob_elsewhere.until("moderation.banned")
    assert (await bob.request({"type": "chat.send", "text": "x"}))["code"] == "banned"
    assert (await bob_elsewhere.request({"type": "chat.send", "text": "x"}))["code"] == "banned"
    assert (await bob.request({"type": "reaction", "kind": "heart"}))["code"] == "banned"
    # A show the seller schedules later loads the ban from the DB.
    later = add_show(env.db, env.seller, state="scheduled", title="Later")
    peer = await env.join(env.bob, show_id=later)
    assert (await peer.until("snapshot"))["you"]["banned"] is True
    assert (await peer.request({"type": "chat.send", "text": "x"}))["code"] == "banned"
    with env.db.session() as session:
        ban = session.exec(select(ChatBan)).one()
        assert (ban.user_id, ban.seller_id, ban.reason) == (env.bob.id, env.seller.id, "spam")
    await seller.request({"type": "mod.unban", "user_id": env.bob.id})
    await bob.until(lambda f: f.get("type") == "moderation.banned" and not f["banned"])
    assert (await bob.request({"type": "chat.send", "text": "sorry"}))["type"] == "chat.sent"
    assert [a[0] for a in actions(env)] == ["ban", "unban"]
    for p in (seller, bob, bob_elsewhere, peer):
        await p.close()


async def test_blocked_words(env: RoomEnv) -> None:
    seller, _ = await env.join_snapshot(env.seller)
    alice, _ = await env.join_snapshot(env.alice)
    words = await seller.request({"type": "mod.blocked_words", "add": ["Scam", "fake"]})
    assert words["words"] == ["fake", "scam"]
    assert (await alice.request({"type": "chat.send", "text": "this is a SCAM!"}))["code"] == "blocked_word"
    assert (await alice.request({"type": "chat.send", "text": "scampi looks great"}))["type"] == "chat.sent"
    bad = await seller.request({"type": "mod.blocked_words", "add": [""]})
    assert bad["code"] == "invalid"
    bad = await seller.request({"type": "mod.blocked_words", "add": "scam"})
    assert bad["code"] == "invalid"
    await seller.request({"type": "mod.blocked_words", "remove": ["scam"]})
    await alice.nothing("moderation.blocked_words", 0.2)  # the list is for staff only
    assert (await alice.request({"type": "chat.send", "text": "a scam?"}))["type"] == "chat.sent"
    assert [a[0] for a in actions(env)] == ["blocked_words", "blocked_words"]
    await seller.close()
    await alice.close()


async def test_slow_mode(env: RoomEnv) -> None:
    seller, _ = await env.join_snapshot(env.seller)
    alice, _ = await env.join_snapshot(env.alice)
    assert (await seller.request({"type": "mod.slow_mode", "seconds": 30}))["seconds"] == 30
    assert (await alice.until("chat.slow_mode"))["seconds"] == 30
    assert (await alice.request({"type": "chat.send", "text": "one"}))["type"] == "chat.sent"
    slowed = await alice.request({"type": "chat.send", "text": "two"})
    assert slowed["code"] == "rate_limited" and "Slow mode" in slowed["reason"]
    # Staff are not slowed down.
    for text in ("a", "b"):
        assert (await seller.request({"type": "chat.send", "text": text}))["type"] == "chat.sent"
    assert (await seller.request({"type": "mod.slow_mode", "seconds": -1}))["code"] == "invalid"
    assert (await seller.request({"type": "mod.slow_mode", "seconds": "fast"}))["code"] == "invalid"
    _, snap = await env.join_snapshot(None)
    assert snap["slow_mode"] == 30
    log = await seller.request({"type": "mod.log"})
    assert [a["action"] for a in log["actions"]] == ["slow_mode"]
    await seller.close()
    await alice.close()
