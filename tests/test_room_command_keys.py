"""Keyed moderation commands (delete, pin, mute, ban, appoint, blocked words, slow mode) are answered
once per key: a retry after a lost answer gets the first answer and acts no second time; the same key for
another command is refused. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import col, select

from liveshow.chat.models import ModerationAction, RoomCommandAnswer
from liveshow.settings import Settings
from tests.conftest import LiveServer
from tests.roomkit import Peer, RoomEnv


@pytest.fixture
def env(settings: Settings, live_server: LiveServer) -> Iterator[RoomEnv]:
    room_env = RoomEnv(settings, live_server.url)
    yield room_env
    room_env.db.close()


def actions(env: RoomEnv) -> list[str]:
    with env.db.session() as session:
        return list(session.exec(select(ModerationAction.action).order_by(col(ModerationAction.id))).all())


async def events_of(peer: Peer, type: str, seconds: float) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        try:
            got.append(await peer.until(type, seconds))
        except TimeoutError:
            return got


async def test_a_retried_delete_is_answered_as_the_first_was(env: RoomEnv) -> None:
    seller, _ = await env.join_snapshot(env.seller)
    alice, _ = await env.join_snapshot(env.alice)
    sent = await alice.request({"type": "chat.send", "text": "spam", "key": "chat-spam-1"})
    delete = {"type": "chat.delete", "message_id": sent["message_id"], "key": "mod-delete-1"}
    first = await seller.request(delete)
    assert first["type"] == "chat.deleted"
    again = await seller.request(delete)
    assert {k: v for k, v in again.items() if k != "reply_to"} == {
        k: v for k, v in first.items() if k != "reply_to"
    }
    assert len(await events_of(alice, "chat.deleted", 0.8)) == 1
    assert actions(env) == ["delete"]
    # Without a key a second delete is what it always was: the message is gone.
    plain = await seller.request({"type": "chat.delete", "message_id": sent["message_id"]})
    assert plain["code"] == "not_found"
    await seller.close()
    await alice.close()


async def test_retried_mute_ban_and_settings_act_once(env: RoomEnv) -> None:
    seller, _ = await env.join_snapshot(env.seller)
    watcher, _ = await env.join_snapshot(None)
    commands = [
        {"type": "mod.mute", "user_id": env.bob.id, "minutes": 10, "key": "mod-mute-0001"},
        {"type": "mod.ban", "user_id": env.bob.id, "key": "mod-ban-00001"},
        {"type": "mod.appoint", "user_id": env.alice.id, "key": "mod-appoint-1"},
        {"type": "mod.slow_mode", "seconds": 5, "key": "mod-slow-0001"},
        {"type": "mod.blocked_words", "add": ["dm me"], "key": "mod-words-001"},
    ]
    for command in commands:
        first = await seller.request(command)
        assert first["type"] != "error", first
        again = await seller.request(command)
        assert {**again, "reply_to": None} == {**first, "reply_to": None}, command["type"]
    assert actions(env) == ["mute", "ban", "appoint", "slow_mode", "blocked_words"]
    assert len(await events_of(watcher, "chat.slow_mode", 0.8)) == 1
    with env.db.session() as session:
        assert len(session.exec(select(RoomCommandAnswer)).all()) == len(commands)
    await seller.close()
    await watcher.close()


async def test_a_key_reused_for_another_command_is_refused(env: RoomEnv) -> None:
    seller, _ = await env.join_snapshot(env.seller)
    await seller.request({"type": "mod.slow_mode", "seconds": 5, "key": "mod-reused-01"})
    refused = await seller.request({"type": "mod.slow_mode", "seconds": 30, "key": "mod-reused-01"})
    assert (refused["type"], refused["code"], refused["field"]) == ("error", "key_reused", "key")
    bad = await seller.request({"type": "mod.slow_mode", "seconds": 30, "key": "bad key"})
    assert (bad["code"], bad["field"]) == ("invalid", "key")
    assert actions(env) == ["slow_mode"]
    # A refusal is not an answer to keep: the same key works once the command can be done.
    alice, _ = await env.join_snapshot(env.alice)
    denied = await alice.request({"type": "mod.slow_mode", "seconds": 1, "key": "mod-alice-01"})
    assert denied["code"] == "not_moderator"
    await seller.request({"type": "mod.appoint", "user_id": env.alice.id})
    await alice.until("moderation.moderator")
    done = await alice.request({"type": "mod.slow_mode", "seconds": 1, "key": "mod-alice-01"})
    assert done["type"] == "chat.slow_mode"
    await seller.close()
    await alice.close()
