"""The notification centre: stored notices, unread counts, and each user's own preferences."""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, col, func, select, update

from liveshow.clock import utcnow
from liveshow.errors import ValidationFailed
from liveshow.social.models import Notice, NoticePref

# Every kind a user can switch off, with the label the preferences page shows.
KINDS: dict[str, str] = {
    "show_scheduled": "A seller I follow schedules a show",
    "show_live": "A seller I follow goes live",
    "liked_up_now": "An item I liked is up in a live show",
    "offer": "A seller sends me an offer",
    "sale": "I make a sale",
    "giveaway": "I win a giveaway",
}
MAX_TEXT = 300
PAGE = 50


def preferences(session: Session, user_id: int) -> dict[str, bool]:
    prefs = dict.fromkeys(KINDS, True)
    for row in session.exec(select(NoticePref).where(NoticePref.user_id == user_id)):
        if row.kind in prefs:
            prefs[row.kind] = row.enabled
    return prefs


def set_preferences(session: Session, user_id: int, changes: dict[str, object]) -> dict[str, bool]:
    """Change the caller's own preferences; every key must be a known kind, every value a bool."""
    for kind, value in changes.items():
        if kind not in KINDS:
            raise ValidationFailed(f"Unknown notice kind: {kind[:40]!r}.")
        if not isinstance(value, bool):
            raise ValidationFailed(f"{kind} must be true or false.")
    existing = {
        row.kind: row for row in session.exec(select(NoticePref).where(NoticePref.user_id == user_id))
    }
    for kind, value in changes.items():
        assert isinstance(value, bool)
        row = existing.get(kind)
        if row is None:
            session.add(NoticePref(user_id=user_id, kind=kind, enabled=value))
        else:
            row.enabled = value
            session.add(row)
    session.commit()
    return preferences(session, user_id)


def wanting(session: Session, user_ids: Iterable[int], kind: str) -> list[int]:
    """Those of ``user_ids`` who have not switched ``kind`` off."""
    ids = sorted(set(user_ids))
    if not ids:
        return []
    off = set(
        session.exec(
            select(NoticePref.user_id).where(
                col(NoticePref.user_id).in_(ids), NoticePref.kind == kind, col(NoticePref.enabled).is_(False)
            )
        )
    )
    return [uid for uid in ids if uid not in off]


def store(session: Session, user_ids: Iterable[int], kind: str, text: str, url: str = "") -> list[Notice]:
    if kind not in KINDS:
        raise ValueError(f"unknown notice kind {kind}")
    rows = [Notice(user_id=uid, kind=kind, text=text[:MAX_TEXT], url=url[:200]) for uid in user_ids]
    session.add_all(rows)
    session.commit()
    return rows


def unread_count(session: Session, user_id: int) -> int:
    query = select(func.count()).where(Notice.user_id == user_id, col(Notice.read_at).is_(None))
    return int(session.exec(query).one())


def recent(session: Session, user_id: int, after_id: int = 0, limit: int = PAGE) -> list[Notice]:
    rows = session.exec(
        select(Notice)
        .where(Notice.user_id == user_id, col(Notice.id) > after_id)
        .order_by(col(Notice.id).desc())
        .limit(max(1, min(limit, PAGE)))
    )
    return list(rows)


def mark_read(session: Session, user_id: int, ids: list[int] | None = None) -> int:
    """Mark the caller's notices read (all, or the given ids); another user's ids are simply not matched."""
    stmt = update(Notice).where(col(Notice.user_id) == user_id, col(Notice.read_at).is_(None))
    if ids is not None:
        stmt = stmt.where(col(Notice.id).in_(ids[:PAGE]))
    result = session.exec(stmt.values(read_at=utcnow()))
    session.commit()
    return int(result.rowcount or 0)


def as_json(notice: Notice) -> dict[str, object]:
    return {
        "id": notice.id,
        "kind": notice.kind,
        "text": notice.text,
        "url": notice.url,
        "at": notice.created_at.isoformat(),
        "read": notice.read_at is not None,
    }
