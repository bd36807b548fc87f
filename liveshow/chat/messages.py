"""Chat messages in the DB: write, read back the latest, delete, pin. Synchronous (run in a thread),
except the write on PostgreSQL, which is one statement awaited on the event loop (save_on_loop).

A message sent with a client key is stored once per (show, author, key): a send repeated after a lost
answer finds the stored row (``Stored.fresh`` False) instead of writing a second one, and the row's
``published_seq`` says whether its chat.message event went out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from liveshow.accounts.models import User
from liveshow.chat.models import ChatMessage, RoomSettings
from liveshow.chat.moderation import ModState, log_action
from liveshow.clock import epoch_ms, utcnow
from liveshow.db import LoopConnection
from liveshow.errors import Conflict, NotFound

RECENT_MESSAGES = 50


class KeyReused(Conflict):
    code = "key_reused"


@dataclass(frozen=True)
class Stored:
    """A message as stored: its public view, the seq its event was published at (None: not yet), and
    whether this call wrote it (False: an earlier send with the same key did)."""

    view: dict[str, Any]
    published_seq: int | None
    fresh: bool
    deleted: bool = False

    def check_same(self, text: str) -> None:
        """A key names one message: the same key with other text is a client bug, not a retry."""
        if self.view["text"] != text:
            raise KeyReused("That key was already used for a different message.", field="key")


def view(message: ChatMessage, author: User) -> dict[str, Any]:
    """The public form of a message, as chat.message events and snapshots carry it."""
    return {
        "id": message.id,
        "user_id": message.user_id,
        "username": author.username,
        "display_name": author.display_name or author.username,
        "text": message.text,
        "role": message.role,
        "at": epoch_ms(message.created_at),
    }


def message_view(session: Session, message_id: int) -> dict[str, Any] | None:
    message = session.get(ChatMessage, message_id)
    if message is None or message.deleted_at is not None:
        return None
    author = session.get(User, message.user_id)
    return view(message, author) if author is not None else None


def _stored(message: ChatMessage, author: User, fresh: bool) -> Stored:
    return Stored(view(message, author), message.published_seq, fresh, message.deleted_at is not None)


def by_key(session: Session, show_id: int, author: User, key: str) -> Stored | None:
    message = session.exec(
        select(ChatMessage).where(
            ChatMessage.show_id == show_id, ChatMessage.user_id == author.id, ChatMessage.client_key == key
        )
    ).first()
    return None if message is None else _stored(message, author, fresh=False)


def save(
    session: Session, show_id: int, author: User, text: str, role: str, key: str | None = None
) -> Stored:
    assert author.id is not None
    if key is not None and (earlier := by_key(session, show_id, author, key)) is not None:
        return earlier
    message = ChatMessage(show_id=show_id, user_id=author.id, text=text, role=role, client_key=key)
    session.add(message)
    try:
        session.commit()  # the flush set the id, and sessions keep their objects' values after a commit
    except IntegrityError:
        # The same key stored by a send racing this one (another socket, another process).
        session.rollback()
        earlier = by_key(session, show_id, author, key) if key is not None else None
        if earlier is None:
            raise
        return earlier
    return _stored(message, author, fresh=True)


def mark_published(session: Session, message_id: int, seq: int) -> None:
    message = session.get(ChatMessage, message_id)
    if message is not None and message.published_seq is None:
        message.published_seq = seq
        session.add(message)
        session.commit()


# A keyless message never conflicts (NULL keys are distinct), so one statement serves both.
INSERT_MESSAGE = """
INSERT INTO chat_messages (show_id, user_id, text, role, created_at, client_key)
VALUES (%(show_id)s, %(user_id)s, %(text)s, %(role)s, %(created_at)s, %(client_key)s)
ON CONFLICT (show_id, user_id, client_key) DO NOTHING
RETURNING id
"""

SELECT_BY_KEY = """
SELECT id, text, role, created_at, deleted_at, published_seq FROM chat_messages
WHERE show_id = %(show_id)s AND user_id = %(user_id)s AND client_key = %(client_key)s
"""

MARK_PUBLISHED = """
UPDATE chat_messages SET published_seq = %(seq)s WHERE id = %(id)s AND published_seq IS NULL RETURNING id
"""


async def save_on_loop(
    conn: LoopConnection, show_id: int, author: User, text: str, role: str, key: str | None = None
) -> Stored:
    """What save() does, in one round trip when the message is new: chat is the hot write of a busy
    room. A key already stored costs a second one, to read the earlier message back."""
    assert author.id is not None
    message = ChatMessage(
        show_id=show_id, user_id=author.id, text=text, role=role, created_at=utcnow(), client_key=key
    )
    params = {
        "show_id": show_id,
        "user_id": author.id,
        "text": text,
        "role": role,
        "created_at": message.created_at,
        "client_key": key,
    }
    row = await conn.fetchone(INSERT_MESSAGE, params)
    if row is not None:
        message.id = row[0]
        return _stored(message, author, fresh=True)
    earlier = await conn.fetchone(SELECT_BY_KEY, params)
    if earlier is None:  # only a key conflicts, and stored rows are never removed
        raise RuntimeError(f"chat message of key {key!r} conflicted but cannot be read back")
    message_id, stored_text, stored_role, created_at, deleted_at, published_seq = earlier
    stored = ChatMessage(
        id=message_id,
        show_id=show_id,
        user_id=author.id,
        text=stored_text,
        role=stored_role,
        created_at=created_at,
        deleted_at=deleted_at,
        client_key=key,
        published_seq=published_seq,
    )
    return _stored(stored, author, fresh=False)


async def mark_published_on_loop(conn: LoopConnection, message_id: int, seq: int) -> None:
    await conn.fetchone(MARK_PUBLISHED, {"id": message_id, "seq": seq})


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
