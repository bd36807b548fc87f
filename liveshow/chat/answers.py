"""Keyed room commands other than chat.send (moderation, delete, pin): the first answer to a key is
stored, and the same command sent again with that key (after a lost answer) gets it back instead of
acting a second time: no second event, no second log line, the same seq and mute end. The same key
with a different command is refused. Synchronous (run in a thread): moderation is rare.

Acting and storing the answer are two commits: a process dying between them leaves the command done
but its answer unknown, and a retry then acts again: banning a banned user or setting the same slow
mode again costs a repeated event, and deleting a deleted message is refused as not found.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from liveshow import jsonwire
from liveshow.chat.messages import KeyReused
from liveshow.chat.models import RoomCommandAnswer

# The fields that only carry a command, not what it asks (room.js marks a resent command "resend").
_ENVELOPE = frozenset({"id", "key", "resend"})


def fingerprint(message: dict[str, Any]) -> str:
    body = {k: v for k, v in message.items() if k not in _ENVELOPE}
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Answer:
    fingerprint: str
    reply: dict[str, Any]

    def for_retry(self, fingerprint: str) -> dict[str, Any]:
        if fingerprint != self.fingerprint:
            raise KeyReused("That key was already used for a different command.", field="key")
        return dict(self.reply)


def find(session: Session, show_id: int, user_id: int, key: str) -> Answer | None:
    row = session.exec(
        select(RoomCommandAnswer).where(
            RoomCommandAnswer.show_id == show_id,
            RoomCommandAnswer.user_id == user_id,
            RoomCommandAnswer.client_key == key,
        )
    ).first()
    return None if row is None else Answer(row.fingerprint, jsonwire.loads(row.reply))


def remember(
    session: Session, show_id: int, user_id: int, key: str, fingerprint: str, reply: dict[str, Any]
) -> Answer:
    """Store the answer; the stored one when the same key was answered meanwhile (a racing retry)."""
    session.add(
        RoomCommandAnswer(
            show_id=show_id,
            user_id=user_id,
            client_key=key,
            fingerprint=fingerprint,
            reply=jsonwire.dumps(reply),
        )
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        earlier = find(session, show_id, user_id, key)
        if earlier is None:
            raise
        return earlier
    return Answer(fingerprint, reply)
