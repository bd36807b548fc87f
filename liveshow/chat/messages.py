"""Chat messages in the DB: write, read back the latest, delete, pin. Synchronous (run in a thread),
except the write on PostgreSQL, which is one statement awaited on the event loop (save_on_loop)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from liveshow.accounts.models import User
from liveshow.chat.models import ChatMessage, RoomSettings
from liveshow.chat.moderation import ModState, log_action
from liveshow.clock import utcnow
from liveshow.db import LoopConnection
from liveshow.errors import NotFound

RECENT_MESSAGES = 50


def view(message: ChatMessage, author: User) -> dict[str, Any]:
    """The public form of a message, as chat.message events and snapshots carry it."""
    return {
        "id": message.id,
        "user_id": message.user_id,
        "username": author.username,
        "display_name": author.display_name or author.username,
        "text": message.text,
        "role": message.role,
        "at": int(message.created_at.timestamp() * 1000),
    }


def message_view(session: Session, message_id: int) -> dict[str, Any] | None:
    message = session.get(ChatMessage, message_id)
    if message is None or message.deleted_at is not None:
        return None
    author = session.get(User, message.user_id)
    return view(message, author) if author is not None else None


def save(session: Session, show_id: int, author: User, text: str, role: str) -> dict[str, Any]:
    assert author.id is not None
    message = ChatMessage(show_id=show_id, user_id=author.id, text=text, role=role)
    session.add(message)
    session.commit()  # the flush set the id, and sessions keep their objects' values after a commit
    return view(message, author)


INSERT_MESSAGE = """
INSERT INTO chat_messages (show_id, user_id, text, role, created_at)
VALUES (%(show_id)s, %(user_id)s, %(text)s, %(role)s, %(created_at)s)
RETURNING id
"""


async def save_on_loop(
    conn: LoopConnection, show_id: int, author: User, text: str, role: str
) -> dict[str, Any]:
    """What save() does, as one round trip: chat is the hot write of a busy room."""
    assert author.id is not None
    message = ChatMessage(show_id=show_id, user_id=author.id, text=text, role=role, created_at=utcnow())
    row = await conn.fetchone(
        INSERT_MESSAGE,
        {
            "show_id": show_id,
            "user_id": author.id,
            "text": text,
            "role": role,
            "created_at": message.created_at,
        },
    )
    assert row is not None
    message.id = row[0]
    return view(message, author)


def recent(session: Session, show_id: int, limit: int = RECENT_MESSAGES) -> list[dict[str, Any]]:
    rows = session.exec(
        select(ChatMessage, User)
        .join(User, col(User.id) == col(ChatMessage.user_id))
        .where(ChatMessage.show_id == show_id, col(ChatMessage.deleted_at).is_(None))
        .order_by(col(ChatMessage.id).desc())
        .limit(limit)
    ).all()
    return [view(message, author) for message, author in reversed(rows)]


def _message_in_show(session: Session, show_id: int, message_id: int) -> ChatMessage:
    message = session.get(ChatMessage, message_id)
    if message is None or message.show_id != show_id or message.deleted_at is not None:
        raise NotFound("No such message in this show.")
    return message


def delete(session: Session, state: ModState, actor_id: int, message_id: int) -> ChatMessage:
    message = _message_in_show(session, state.show_id, message_id)
    message.deleted_at = utcnow()
    message.deleted_by = actor_id
    session.add(message)
    settings = session.get(RoomSettings, state.show_id)
    if settings is not None and settings.pinned_message_id == message_id:
        settings.pinned_message_id = None
        session.add(settings)
    log_action(session, state, actor_id, "delete", message.user_id, message_id, detail=message.text[:200])
    session.commit()
    return message


def pin(session: Session, state: ModState, actor_id: int, message_id: int | None) -> dict[str, Any] | None:
    pinned: dict[str, Any] | None = None
    if message_id is not None:
        _message_in_show(session, state.show_id, message_id)
        pinned = message_view(session, message_id)
    settings = session.get(RoomSettings, state.show_id) or RoomSettings(show_id=state.show_id)
    settings.pinned_message_id = message_id
    session.add(settings)
    log_action(session, state, actor_id, "pin" if message_id else "unpin", message_id=message_id)
    session.commit()
    return pinned
