"""Moderation: who may do what in a room, the room's cached moderation state, and the DB operations
(each one logged in ``moderation_actions`` in the same transaction).

Every process keeps a ModState per open room, loaded from the DB when the room opens and then kept
current by the room's own events on the bus (``moderation.*``, ``chat.slow_mode``, ``chat.pinned``),
so a ban made through one process stops the user on every process without a DB read per message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from liveshow.accounts.models import User
from liveshow.chat.models import BlockedWord, ChatBan, ChatMute, ModerationAction, Moderator, RoomSettings
from liveshow.clock import utcnow, wall_ms
from liveshow.errors import Forbidden, NotFound, ValidationFailed
from liveshow.shows.models import Show

MAX_MUTE_MINUTES = 7 * 24 * 60
MAX_SLOW_MODE_SECONDS = 600
MAX_BLOCKED_WORDS = 500


class Banned(Forbidden):
    code = "banned"


class Muted(Forbidden):
    code = "muted"


class BlockedWordUsed(ValidationFailed):
    code = "blocked_word"


class NotModerator(Forbidden):
    code = "not_moderator"


@dataclass
class ModState:
    show_id: int
    seller_id: int
    moderators: set[int] = field(default_factory=set)
    banned: set[int] = field(default_factory=set)
    muted_until_ms: dict[int, int] = field(default_factory=dict)
    blocked_words: set[str] = field(default_factory=set)
    slow_mode_seconds: int = 0
    pinned: dict[str, Any] | None = None
    viewer_count: int = 0
    _blocked_re: re.Pattern[str] | None = None

    def role_of(self, user_id: int | None) -> str:
        if user_id is None:
            return "anonymous"
        if user_id == self.seller_id:
            return "seller"
        return "moderator" if user_id in self.moderators else "viewer"

    def is_staff(self, user_id: int | None) -> bool:
        return self.role_of(user_id) in ("seller", "moderator")

    def staff_ids(self) -> list[int]:
        return sorted({self.seller_id, *self.moderators})

    def require_staff(self, user_id: int | None) -> None:
        if not self.is_staff(user_id):
            raise NotModerator("Only the seller and moderators can do that.")

    def require_seller(self, user_id: int | None) -> None:
        if user_id != self.seller_id:
            raise Forbidden("Only the seller can do that.")

    def check_can_write(self, user_id: int) -> None:
        if user_id in self.banned:
            raise Banned("You are banned from this seller's shows.")
        until = self.muted_until_ms.get(user_id, 0)
        if until > wall_ms():
            raise Muted("You are muted for now.", until_ms=until)

    def set_blocked_words(self, words: set[str]) -> None:
        self.blocked_words = set(words)
        self._blocked_re = (
            re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, sorted(words))) + r")(?!\w)", re.IGNORECASE)
            if words
            else None
        )

    def check_words(self, text: str) -> None:
        if self._blocked_re is not None and self._blocked_re.search(text):
            raise BlockedWordUsed("Your message contains a word this seller does not allow.")

    def apply(self, event_type: str, data: dict[str, Any]) -> None:
        """Keep the cache current from the room's events (whichever process made them)."""
        user_id = data.get("user_id")
        if event_type == "moderation.moderator" and isinstance(user_id, int):
            (self.moderators.add if data.get("appointed") else self.moderators.discard)(user_id)
        elif event_type == "moderation.banned" and isinstance(user_id, int):
            (self.banned.add if data.get("banned") else self.banned.discard)(user_id)
        elif event_type == "moderation.muted" and isinstance(user_id, int):
            self.muted_until_ms[user_id] = int(data.get("until_ms") or 0)
        elif event_type == "moderation.blocked_words" and isinstance(data.get("words"), list):
            self.set_blocked_words({str(w) for w in data["words"]})
        elif event_type == "chat.slow_mode":
            self.slow_mode_seconds = int(data.get("seconds") or 0)
        elif event_type == "chat.pinned":
            pinned = data.get("message")
            self.pinned = pinned if isinstance(pinned, dict) else None
        elif event_type == "chat.deleted" and self.pinned and self.pinned.get("id") == data.get("message_id"):
            self.pinned = None
        elif event_type == "presence" and isinstance(data.get("count"), int):
            self.viewer_count = data["count"]


def load_state(session: Session, show: Show) -> ModState:
    from liveshow.chat.messages import message_view

    assert show.id is not None
    state = ModState(show_id=show.id, seller_id=show.seller_id)
    state.moderators = set(
        session.exec(select(Moderator.user_id).where(Moderator.seller_id == show.seller_id)).all()
    )
    state.banned = set(session.exec(select(ChatBan.user_id).where(ChatBan.seller_id == show.seller_id)).all())
    for mute in session.exec(
        select(ChatMute).where(ChatMute.show_id == show.id, col(ChatMute.until) > utcnow())
    ).all():
        until = int(_aware(mute.until).timestamp() * 1000)
        state.muted_until_ms[mute.user_id] = max(state.muted_until_ms.get(mute.user_id, 0), until)
    state.set_blocked_words(
        set(session.exec(select(BlockedWord.word).where(BlockedWord.seller_id == show.seller_id)).all())
    )
    settings = session.get(RoomSettings, show.id)
    if settings is not None:
        state.slow_mode_seconds = settings.slow_mode_seconds
        if settings.pinned_message_id is not None:
            state.pinned = message_view(session, settings.pinned_message_id)
    return state


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def find_user(session: Session, user_id: int | None, username: str | None = None) -> User:
    user: User | None = None
    if user_id is not None:
        user = session.get(User, user_id)
    elif username:
        user = session.exec(select(User).where(User.username == username.strip().lower())).first()
    if user is None or user.id is None:
        raise NotFound("No such user.")
    return user


def log_action(
    session: Session,
    state: ModState,
    actor_id: int,
    action: str,
    target_user_id: int | None = None,
    message_id: int | None = None,
    detail: str = "",
) -> None:
    session.add(
        ModerationAction(
            show_id=state.show_id,
            seller_id=state.seller_id,
            actor_id=actor_id,
            action=action,
            target_user_id=target_user_id,
            message_id=message_id,
            detail=detail[:500],
        )
    )


def check_target(state: ModState, actor_id: int, target_id: int) -> None:
    """Moderators act on viewers; only the seller acts on moderators; nobody acts on the seller."""
    if target_id == state.seller_id:
        raise Forbidden("The seller cannot be moderated.")
    if target_id in state.moderators and actor_id != state.seller_id:
        raise Forbidden("Only the seller can moderate a moderator.")
    if target_id == actor_id:
        raise ValidationFailed("You cannot moderate yourself.")


def set_moderator(session: Session, state: ModState, actor_id: int, target: User, appointed: bool) -> None:
    assert target.id is not None
    if target.id == state.seller_id:
        raise ValidationFailed("The seller is already in charge.")
    row = session.exec(
        select(Moderator).where(Moderator.seller_id == state.seller_id, Moderator.user_id == target.id)
    ).first()
    if appointed and row is None:
        session.add(Moderator(seller_id=state.seller_id, user_id=target.id))
    elif not appointed and row is not None:
        session.delete(row)
    log_action(session, state, actor_id, "appoint" if appointed else "revoke", target.id)
    session.commit()


def set_ban(
    session: Session, state: ModState, actor_id: int, target_id: int, banned: bool, reason: str
) -> None:
    row = session.exec(
        select(ChatBan).where(ChatBan.seller_id == state.seller_id, ChatBan.user_id == target_id)
    ).first()
    if banned and row is None:
        session.add(ChatBan(seller_id=state.seller_id, user_id=target_id, banned_by=actor_id, reason=reason))
    elif not banned and row is not None:
        session.delete(row)
    log_action(session, state, actor_id, "ban" if banned else "unban", target_id, detail=reason)
    session.commit()


def set_mute(session: Session, state: ModState, actor_id: int, target_id: int, minutes: int) -> int:
    """Mute for minutes (0 lifts it); returns the end as wall milliseconds (0 when lifted)."""
    now = utcnow()
    for row in session.exec(
        select(ChatMute).where(
            ChatMute.show_id == state.show_id, ChatMute.user_id == target_id, col(ChatMute.until) > now
        )
    ).all():
        row.until = now
        session.add(row)
    until_ms = 0
    if minutes > 0:
        until = now + timedelta(minutes=minutes)
        session.add(ChatMute(show_id=state.show_id, user_id=target_id, muted_by=actor_id, until=until))
        until_ms = int(until.timestamp() * 1000)
    log_action(session, state, actor_id, "mute" if minutes else "unmute", target_id, detail=f"{minutes} min")
    session.commit()
    return until_ms


def change_blocked_words(
    session: Session, state: ModState, actor_id: int, add: list[str], remove: list[str]
) -> list[str]:
    words = set(session.exec(select(BlockedWord.word).where(BlockedWord.seller_id == state.seller_id)).all())
    add_set = {w.casefold() for w in add} - words
    remove_set = {w.casefold() for w in remove} & words
    if len(words) + len(add_set) - len(remove_set) > MAX_BLOCKED_WORDS:
        raise ValidationFailed(f"At most {MAX_BLOCKED_WORDS} blocked words.")
    for word in add_set:
        session.add(BlockedWord(seller_id=state.seller_id, word=word))
    for row in session.exec(
        select(BlockedWord).where(
            BlockedWord.seller_id == state.seller_id, col(BlockedWord.word).in_(remove_set)
        )
    ).all():
        session.delete(row)
    detail = f"+{sorted(add_set)} -{sorted(remove_set)}"
    log_action(session, state, actor_id, "blocked_words", detail=detail)
    session.commit()
    return sorted((words | add_set) - remove_set)


def set_slow_mode(session: Session, state: ModState, actor_id: int, seconds: int) -> None:
    settings = session.get(RoomSettings, state.show_id) or RoomSettings(show_id=state.show_id)
    settings.slow_mode_seconds = seconds
    session.add(settings)
    log_action(session, state, actor_id, "slow_mode", detail=f"{seconds} s")
    session.commit()


def live_shows_of(session: Session, seller_id: int) -> list[int]:
    rows = session.exec(select(Show.id).where(Show.seller_id == seller_id, Show.state == "live")).all()
    return [r for r in rows if r is not None]


def moderation_log(session: Session, seller_id: int, limit: int = 100) -> list[ModerationAction]:
    return list(
        session.exec(
            select(ModerationAction)
            .where(ModerationAction.seller_id == seller_id)
            .order_by(col(ModerationAction.id).desc())
            .limit(limit)
        ).all()
    )
