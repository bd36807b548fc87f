"""Room tables: chat messages (history and replay), moderators, bans, mutes, blocked words, the
per-show room settings (pinned message, slow mode) and the moderation log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from liveshow.clock import utcnow

MAX_CHAT_CHARS = 500
MAX_KEY_CHARS = 80


class ChatMessage(SQLModel, table=True):
    __tablename__ = "chat_messages"
    # One stored message per client key: a retry of a send whose answer was lost finds this row.
    __table_args__ = (
        UniqueConstraint("show_id", "user_id", "client_key", name="uq_chat_messages_show_user_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    show_id: int = Field(foreign_key="shows.id", index=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    text: str = Field(max_length=MAX_CHAT_CHARS)
    # What the author was when writing: viewer | moderator | seller (kept so history shows the badge).
    role: str = Field(default="viewer", max_length=12)
    created_at: datetime = Field(default_factory=utcnow)
    deleted_at: datetime | None = None
    deleted_by: int | None = Field(default=None, foreign_key="users.id")
    # The sender's idempotency key (None from clients that send none), and the seq of the chat.message
    # event once published: None while a keyed message is stored but not yet announced, so a retry
    # knows to publish it rather than answer a seq nobody was sent.
    client_key: str | None = Field(default=None, max_length=MAX_KEY_CHARS)
    published_seq: int | None = None


class Moderator(SQLModel, table=True):
    """A user the seller trusts with moderation in every one of the seller's shows."""

    __tablename__ = "moderators"
    __table_args__ = (UniqueConstraint("seller_id", "user_id", name="uq_moderators_seller_user"),)

    id: int | None = Field(default=None, primary_key=True)
    seller_id: int = Field(foreign_key="users.id", index=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    appointed_at: datetime = Field(default_factory=utcnow)


class ChatBan(SQLModel, table=True):
    """A user who may no longer write in any of the seller's shows."""

    __tablename__ = "chat_bans"
    __table_args__ = (UniqueConstraint("seller_id", "user_id", name="uq_chat_bans_seller_user"),)

    id: int | None = Field(default=None, primary_key=True)
    seller_id: int = Field(foreign_key="users.id", index=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    banned_by: int = Field(foreign_key="users.id")
    reason: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class ChatMute(SQLModel, table=True):
    """A user silenced in one show until a moment."""

    __tablename__ = "chat_mutes"

    id: int | None = Field(default=None, primary_key=True)
    show_id: int = Field(foreign_key="shows.id", index=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    muted_by: int = Field(foreign_key="users.id")
    until: datetime
    created_at: datetime = Field(default_factory=utcnow)


class BlockedWord(SQLModel, table=True):
    __tablename__ = "blocked_words"
    __table_args__ = (UniqueConstraint("seller_id", "word", name="uq_blocked_words_seller_word"),)

    id: int | None = Field(default=None, primary_key=True)
    seller_id: int = Field(foreign_key="users.id", index=True)
    word: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow)


class RoomSettings(SQLModel, table=True):
    """Per-show room state that must survive restarts and be shared by every process."""

    __tablename__ = "room_settings"

    show_id: int = Field(foreign_key="shows.id", primary_key=True)
    pinned_message_id: int | None = Field(default=None, foreign_key="chat_messages.id")
    slow_mode_seconds: int = Field(default=0)


class ModerationAction(SQLModel, table=True):
    """Everything the seller or a moderator did, for accountability."""

    __tablename__ = "moderation_actions"

    id: int | None = Field(default=None, primary_key=True)
    show_id: int | None = Field(default=None, foreign_key="shows.id", index=True)
    seller_id: int = Field(foreign_key="users.id", index=True)
    actor_id: int = Field(foreign_key="users.id")
    action: str = Field(max_length=24)
    target_user_id: int | None = Field(default=None, foreign_key="users.id")
    message_id: int | None = Field(default=None, foreign_key="chat_messages.id")
    detail: str = Field(default="", max_length=500)
    at: datetime = Field(default_factory=utcnow)


class RoomCommandAnswer(SQLModel, table=True):
    """The answer given to a keyed room command (moderation, delete, pin), kept so that the same
    command sent again after a lost answer gets this answer instead of acting twice."""

    __tablename__ = "room_command_answers"
    __table_args__ = (
        UniqueConstraint("show_id", "user_id", "client_key", name="uq_room_command_answers_show_user_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    show_id: int = Field(foreign_key="shows.id", index=True)
    user_id: int = Field(foreign_key="users.id")
    client_key: str = Field(max_length=MAX_KEY_CHARS)
    fingerprint: str = Field(max_length=64)  # of what the command asked: a reused key must ask the same
    reply: str  # JSON
    created_at: datetime = Field(default_factory=utcnow)
