"""The room's own message types. Each handler takes (service, room, connection, message), does the
work through the services, and returns the reply frame (or None). Refusals raise a DomainError."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from liveshow import usertext
from liveshow.accounts.models import User
from liveshow.chat import messages, moderation
from liveshow.chat.models import MAX_CHAT_CHARS
from liveshow.chat.moderation import ModState
from liveshow.chat.protocol import get_int, get_optional_int, get_str, get_str_list
from liveshow.chat.room import Connection, Room
from liveshow.chat.service import REACTION_KINDS, RoomService
from liveshow.clock import wall_ms
from liveshow.errors import DomainError, NotAuthenticated, ValidationFailed

log = logging.getLogger(__name__)

Handler = Callable[[RoomService, Room, Connection, dict[str, Any]], Awaitable[dict[str, Any] | None]]


def _author(conn: Connection) -> User:
    if conn.user is None or conn.user.id is None:
        raise NotAuthenticated("Sign in to do that.")
    return conn.user


def _staff(room: Room, conn: Connection) -> User:
    user = _author(conn)
    room.state.require_staff(user.id)
    return user


async def _db(fn: Callable[..., Any], service: RoomService, *args: Any) -> Any:
    def run() -> Any:
        with service.context.db.session() as session:
            return fn(session, *args)

    return await run_in_threadpool(run)


async def chat_send(
    service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]
) -> dict[str, Any]:
    user = _author(conn)
    assert user.id is not None
    # The shared cleaner: no control or bidi characters reach other people's screens, newlines are spaces.
    text = usertext.clean(get_str(msg, "text", max_chars=MAX_CHAT_CHARS))
    if not text:
        raise ValidationFailed("Field text is empty.", field="text")
    state = room.state
    state.check_can_write(user.id)
    role = state.role_of(user.id)
    staff = role in ("seller", "moderator")
    if role != "seller":
        state.check_words(text)
    await service.chat_limit.check((room.show_id, user.id), 0 if staff else state.slow_mode_seconds)
    if service.chat_db is not None:
        view = await messages.save_on_loop(service.chat_db, room.show_id, user, text, role)
    else:
        view = await _db(messages.save, service, room.show_id, user, text, role)
    event = await service.publish(room.show_id, "chat.message", view)
    for hook in service.context.chat_hooks:
        try:
            await hook(room.show_id, user, text)
        except DomainError as exc:
            conn.send(exc.frame())
        except Exception:
            log.exception("chat hook %r failed", hook)
    return {"type": "chat.sent", "message_id": view["id"], "seq": event.seq}


async def reaction(
    service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]
) -> dict[str, Any] | None:
    kind = get_str(msg, "kind", max_chars=16)
    if kind not in REACTION_KINDS:
        raise ValidationFailed(f"Unknown reaction; use one of {', '.join(REACTION_KINDS)}.", field="kind")
    if conn.user_id is not None and conn.user_id in room.state.banned:
        raise moderation.Banned("You are banned from this seller's shows.")
    service.reaction_limit.check(conn.key)
    room.reactions[kind] += 1  # published as one reaction.burst per reaction tick
    return {"type": "reaction.ok"} if "id" in msg else None


async def chat_delete(
    service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]
) -> dict[str, Any]:
    actor = _staff(room, conn)
    message_id = get_int(msg, "message_id", low=1)
    await _db(messages.delete, service, room.state, actor.id, message_id)
    event = await service.publish(room.show_id, "chat.deleted", {"message_id": message_id, "by": actor.id})
    return {"type": "chat.deleted", "message_id": message_id, "seq": event.seq}


async def chat_pin(service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    actor = _staff(room, conn)
    message_id = get_optional_int(msg, "message_id")
    pinned = await _db(messages.pin, service, room.state, actor.id, message_id)
    event = await service.publish(room.show_id, "chat.pinned", {"message": pinned})
    return {"type": "chat.pinned", "message": pinned, "seq": event.seq}


async def _target(service: RoomService, msg: dict[str, Any]) -> User:
    user_id = get_optional_int(msg, "user_id")
    username = None if user_id is not None else get_str(msg, "username", max_chars=32)
    target: User = await _db(moderation.find_user, service, user_id, username)
    return target


def _private_to(state: ModState, *user_ids: int) -> list[int]:
    return sorted({*state.staff_ids(), *user_ids})


async def _publish_to_seller_shows(service: RoomService, room: Room, type: str, data: dict[str, Any]) -> int:
    """Publish on this show and every other live show of the seller (bans and moderators span them)."""
    event = await service.publish(room.show_id, type, data)
    others = await _db(moderation.live_shows_of, service, room.state.seller_id)
    for show_id in others:
        if show_id != room.show_id:
            await service.publish(show_id, type, data)
    return event.seq


async def mod_mute(service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    actor = _staff(room, conn)
    minutes = get_int(msg, "minutes", low=0, high=moderation.MAX_MUTE_MINUTES) if "minutes" in msg else 10
    if msg.get("type") == "mod.unmute":
        minutes = 0
    target = await _target(service, msg)
    assert actor.id is not None and target.id is not None
    moderation.check_target(room.state, actor.id, target.id)
    until_ms = await _db(moderation.set_mute, service, room.state, actor.id, target.id, minutes)
    data = {"user_id": target.id, "until_ms": until_ms, "to": _private_to(room.state, target.id)}
    event = await service.publish(room.show_id, "moderation.muted", data)
    return {"type": "moderation.muted", "user_id": target.id, "until_ms": until_ms, "seq": event.seq}


async def mod_ban(service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    actor = _staff(room, conn)
    banned = msg.get("type") == "mod.ban"
    reason = get_str(msg, "reason", max_chars=200, allow_empty=True) if "reason" in msg else ""
    target = await _target(service, msg)
    assert actor.id is not None and target.id is not None
    moderation.check_target(room.state, actor.id, target.id)
    await _db(moderation.set_ban, service, room.state, actor.id, target.id, banned, reason)
    data = {"user_id": target.id, "banned": banned, "to": _private_to(room.state, target.id)}
    seq = await _publish_to_seller_shows(service, room, "moderation.banned", data)
    return {"type": "moderation.banned", "user_id": target.id, "banned": banned, "seq": seq}


async def mod_appoint(
    service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]
) -> dict[str, Any]:
    actor = _author(conn)
    room.state.require_seller(actor.id)
    appointed = msg.get("type") == "mod.appoint"
    target = await _target(service, msg)
    assert actor.id is not None and target.id is not None
    await _db(moderation.set_moderator, service, room.state, actor.id, target, appointed)
    data = {"user_id": target.id, "username": target.username, "appointed": appointed}
    seq = await _publish_to_seller_shows(service, room, "moderation.moderator", data)
    return {"type": "moderation.moderator", **data, "seq": seq}


async def mod_blocked_words(
    service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]
) -> dict[str, Any]:
    actor = _staff(room, conn)
    add = get_str_list(msg, "add", max_items=100, max_chars=40)
    remove = get_str_list(msg, "remove", max_items=100, max_chars=40)
    words = await _db(moderation.change_blocked_words, service, room.state, actor.id, add, remove)
    if add or remove:
        data = {"words": words, "to": room.state.staff_ids()}
        await _publish_to_seller_shows(service, room, "moderation.blocked_words", data)
    return {"type": "moderation.blocked_words", "words": words}


async def mod_slow_mode(
    service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]
) -> dict[str, Any]:
    actor = _staff(room, conn)
    seconds = get_int(msg, "seconds", low=0, high=moderation.MAX_SLOW_MODE_SECONDS)
    await _db(moderation.set_slow_mode, service, room.state, actor.id, seconds)
    event = await service.publish(room.show_id, "chat.slow_mode", {"seconds": seconds})
    return {"type": "chat.slow_mode", "seconds": seconds, "seq": event.seq}


async def mod_log(service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    _staff(room, conn)
    rows = await _db(moderation.moderation_log, service, room.state.seller_id)
    return {
        "type": "mod.log",
        "actions": [
            {
                "id": r.id,
                "show_id": r.show_id,
                "actor_id": r.actor_id,
                "action": r.action,
                "target_user_id": r.target_user_id,
                "message_id": r.message_id,
                "detail": r.detail,
                "at": int(r.at.timestamp() * 1000),
            }
            for r in rows
        ],
    }


async def presence_list(
    service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]
) -> dict[str, Any]:
    _staff(room, conn)
    entries = await service.presence.viewers(room.show_id)
    named: dict[int, dict[str, Any]] = {}
    anonymous = 0
    for viewer in entries:
        if viewer is None or not isinstance(viewer.get("user_id"), int):
            anonymous += 1
        else:
            named.setdefault(viewer["user_id"], viewer)
    viewers = sorted(named.values(), key=lambda v: str(v.get("username")))
    return {"type": "presence.list", "count": len(entries), "viewers": viewers, "anonymous": anonymous}


async def time_sync(
    service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]
) -> dict[str, Any]:
    return {"type": "time", "server_ms": wall_ms()}


async def ping(service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    return {"type": "pong", "server_ms": wall_ms()}


async def late_hello(
    service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]
) -> dict[str, Any]:
    raise ValidationFailed("hello is only accepted as the first frame; reconnect with last_seq to resume.")


HANDLERS: dict[str, Handler] = {
    "chat.send": chat_send,
    "reaction": reaction,
    "chat.delete": chat_delete,
    "chat.pin": chat_pin,
    "mod.mute": mod_mute,
    "mod.unmute": mod_mute,
    "mod.ban": mod_ban,
    "mod.unban": mod_ban,
    "mod.appoint": mod_appoint,
    "mod.revoke": mod_appoint,
    "mod.blocked_words": mod_blocked_words,
    "mod.slow_mode": mod_slow_mode,
    "mod.log": mod_log,
    "presence.list": presence_list,
    "time": time_sync,
    "ping": ping,
    "hello": late_hello,
}
