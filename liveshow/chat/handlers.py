"""The room's own message types. Each handler takes (service, room, connection, message), does the
work through the services, and returns the reply frame (or None). Refusals raise a DomainError."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from liveshow import usertext
from liveshow.accounts.models import User
from liveshow.chat import answers, messages, moderation
from liveshow.chat.models import MAX_CHAT_CHARS
from liveshow.chat.moderation import ModState
from liveshow.chat.protocol import get_int, get_optional_key, get_str, get_str_list
from liveshow.chat.room import Connection, Room
from liveshow.chat.service import REACTION_KINDS, RoomService
from liveshow.clock import wall_ms
from liveshow.errors import DomainError, NotAuthenticated, ValidationFailed

log = logging.getLogger(__name__)

Handler = Callable[[RoomService, Room, Connection, dict[str, Any]], Awaitable[dict[str, Any] | None]]

# The largest id a database column holds (BIGINT); a larger one would fail in the driver (OverflowError)
# and be answered as our bug instead of the client's.
MAX_ID = 2**63 - 1


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
    key = get_optional_key(msg)
    if key is not None and msg.get("resend") is True:
        # The page says it is sending this again (no answer came): look for it first, so that a send
        # already stored is answered without using up the sender's rate limit a second time.
        earlier = await _db(messages.by_key, service, room.show_id, user, key)
        if earlier is not None:
            return await _answer_again(service, room, conn, user, earlier, text)
    state = room.state
    try:
        state.check_can_write(user.id)
        role = state.role_of(user.id)
        staff = role in ("seller", "moderator")
        if role != "seller":
            state.check_words(text)
        slow = 0 if staff else state.slow_mode_seconds
        await service.limits.check("chat.account", f"{room.show_id}:{user.id}", slow)
    except DomainError:
        # A retry of a message already accepted is answered as it was, even if the sender has since
        # been muted or has used up the rate limit with other messages (or with this retry itself).
        earlier = await _db(messages.by_key, service, room.show_id, user, key) if key else None
        if earlier is None:
            raise
        return await _answer_again(service, room, conn, user, earlier, text)
    if service.chat_db is not None:
        stored = await messages.save_on_loop(service.chat_db, room.show_id, user, text, role, key)
    else:
        stored = await _db(messages.save, service, room.show_id, user, text, role, key)
    if not stored.fresh:
        return await _answer_again(service, room, conn, user, stored, text)
    return await _announce(service, room, conn, user, stored.view, key is not None)


async def _answer_again(
    service: RoomService, room: Room, conn: Connection, user: User, earlier: messages.Stored, text: str
) -> dict[str, Any]:
    """The answer to a send whose key is stored already: the first answer, once the message is out."""
    earlier.check_same(text)
    if earlier.published_seq is not None or earlier.deleted:
        return {"type": "chat.sent", "message_id": earlier.view["id"], "seq": earlier.published_seq}
    # Stored, but the first attempt failed before its event went out (the bus was away): send it now.
    return await _announce(service, room, conn, user, earlier.view, keyed=True)


async def _announce(
    service: RoomService, room: Room, conn: Connection, user: User, view: dict[str, Any], keyed: bool
) -> dict[str, Any]:
    # In the show's log before the sender hears it was sent: a process killed right after the answer
    # must not take an acknowledged message out of the log and the replay.
    event = await service.publish(room.show_id, "chat.message", view, durable=True)
    if keyed:
        try:
            if service.chat_db is not None:
                await messages.mark_published_on_loop(service.chat_db, view["id"], event.seq)
            else:
                await _db(messages.mark_published, service, view["id"], event.seq)
        except Exception:
            # The message is out; a retry would publish it once more, which pages show once (by id).
            log.exception("recording that chat message %s went out as seq %s failed", view["id"], event.seq)
    for hook in service.context.chat_hooks:
        try:
            await hook(room.show_id, user, view["text"], view["id"])
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
    # Per account, or per address when anonymous: a new socket does not get a new budget.
    sender = conn.user_id if conn.user_id is not None else service.limits.address(conn.websocket)
    await service.limits.check("reaction.sender", f"{room.show_id}:{sender}")
    room.reactions[kind] += 1  # published as one reaction.burst per reaction tick
    return {"type": "reaction.ok"} if "id" in msg else None


async def chat_delete(
    service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]
) -> dict[str, Any]:
    actor = _staff(room, conn)
    message_id = get_int(msg, "message_id", low=1, high=MAX_ID)
    await _db(messages.delete, service, room.state, actor.id, message_id)
    event = await service.publish(room.show_id, "chat.deleted", {"message_id": message_id, "by": actor.id})
    return {"type": "chat.deleted", "message_id": message_id, "seq": event.seq}


async def chat_pin(service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    actor = _staff(room, conn)
    message_id = None if msg.get("message_id") is None else get_int(msg, "message_id", low=1, high=MAX_ID)
    pinned = await _db(messages.pin, service, room.state, actor.id, message_id)
    event = await service.publish(room.show_id, "chat.pinned", {"message": pinned})
    return {"type": "chat.pinned", "message": pinned, "seq": event.seq}


async def _target(service: RoomService, msg: dict[str, Any]) -> User:
    user_id = None if msg.get("user_id") is None else get_int(msg, "user_id", low=1, high=MAX_ID)
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


def answered_once(handler: Handler) -> Handler:
    """A state-changing command with a client key is answered once per key: a retry after a lost
    answer gets the stored answer (see answers.py). Without a key it runs as before (older pages)."""

    async def run(
        service: RoomService, room: Room, conn: Connection, msg: dict[str, Any]
    ) -> dict[str, Any] | None:
        key = get_optional_key(msg)
        user_id = conn.user_id
        if key is None or user_id is None:
            return await handler(service, room, conn, msg)
        fingerprint = answers.fingerprint(msg)
        earlier: answers.Answer | None = await _db(answers.find, service, room.show_id, user_id, key)
        if earlier is not None:
            return earlier.for_retry(fingerprint)
        reply = await handler(service, room, conn, msg)
        if reply is None:
            return None
        stored: answers.Answer = await _db(
            answers.remember, service, room.show_id, user_id, key, fingerprint, reply
        )
        return stored.for_retry(fingerprint)

    return run


HANDLERS: dict[str, Handler] = {
    "chat.send": chat_send,
    "reaction": reaction,
    "chat.delete": answered_once(chat_delete),
    "chat.pin": answered_once(chat_pin),
    "mod.mute": answered_once(mod_mute),
    "mod.unmute": answered_once(mod_mute),
    "mod.ban": answered_once(mod_ban),
    "mod.unban": answered_once(mod_ban),
    "mod.appoint": answered_once(mod_appoint),
    "mod.revoke": answered_once(mod_appoint),
    "mod.blocked_words": answered_once(mod_blocked_words),
    "mod.slow_mode": answered_once(mod_slow_mode),
    "mod.log": mod_log,
    "presence.list": presence_list,
    "time": time_sync,
    "ping": ping,
    "hello": late_hello,
}
