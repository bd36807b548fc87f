"""Delivering notices: stored for the notification centre, a toast over the room socket, Web Push.

Every notice is filtered by the recipient's own preferences first. The toast is a private ``notice``
event (data ``"to": [user_ids]``) published through the show log on the show's topic, so the room
delivers it only to those users' sockets; the bell also polls ``/api/notices`` for pages without a room.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from liveshow.db import Database
from liveshow.showlog import ShowLog
from liveshow.social import notices
from liveshow.social.models import NoticeFanout
from liveshow.social.webpush import WebPush

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, db: Database, showlog: ShowLog, push: WebPush | None) -> None:
        self.db = db
        self.showlog = showlog
        self.push = push
        self._pushes: set[asyncio.Task[int]] = set()

    async def notify(
        self,
        user_ids: list[int],
        kind: str,
        text: str,
        url: str = "",
        show_id: int | None = None,
    ) -> list[int]:
        """Tell ``user_ids`` (those who want ``kind``); returns who was told."""
        told = await run_in_threadpool(self._store, user_ids, kind, text, url)
        if not told:
            return []
        payload: dict[str, Any] = {"kind": kind, "text": text, "url": url}
        if show_id is not None:
            await self.showlog.publish(show_id, "notice", {**payload, "to": told})
        if self.push is not None:
            task = asyncio.create_task(run_in_threadpool(self.push.send_to_users, told, payload))
            self._pushes.add(task)
            task.add_done_callback(self._pushes.discard)
        return told

    def _store(self, user_ids: list[int], kind: str, text: str, url: str) -> list[int]:
        with self.db.session() as session:
            told = notices.wanting(session, user_ids, kind)
            notices.store(session, told, kind, text, url)
            return told

    def claim_fanout(self, key: str) -> bool:
        """True for the one process (and the one time) that gets to announce ``key``."""
        with self.db.session() as session:
            session.add(NoticeFanout(key=key[:60]))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return False
            return True

    async def drain(self) -> None:
        """Wait for pushes in flight (shutdown, tests)."""
        if self._pushes:
            await asyncio.gather(*list(self._pushes), return_exceptions=True)
