"""Embed listings when they are saved, without the closet having to call us.

Session events (registered for this app's engine only) collect the ids of listings inserted or
updated in a transaction; after that transaction commits they are queued, and a background task embeds
them off the request path (``SimilarIndex.listing_saved``: unchanged text is skipped). A rolled-back
transaction queues nothing. ``SocialService.listing_saved`` remains for callers that want it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from starlette.concurrency import run_in_threadpool

from liveshow.closet.models import Listing
from liveshow.db import Database
from liveshow.social.embedder import ModelMissing
from liveshow.social.similar import SimilarIndex

log = logging.getLogger(__name__)
INFO_KEY = "social_saved_listings"


class ListingHook:
    def __init__(self, db: Database, index: SimilarIndex, interval: float = 0.5) -> None:
        self.db = db
        self.index = index
        self.interval = interval
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        # The session events are global (every Session class instance): a key of this hook's own, so
        # another app's hook in the same process (one whose startup failed before it could stop, say)
        # can never take this app's saved listings.
        self._info_key = f"{INFO_KEY}:{id(self)}"

    # ------------------------------------------------------------ session events (any thread)

    def _mine(self, session: OrmSession) -> bool:
        try:
            return session.get_bind() is self.db.engine
        except Exception:
            return False

    def _after_flush(self, session: OrmSession, _context: Any) -> None:
        if not self._mine(session):
            return
        ids = session.info.setdefault(self._info_key, set())
        for obj in (*session.new, *session.dirty):
            if isinstance(obj, Listing) and obj.id is not None:
                ids.add(obj.id)

    def _after_commit(self, session: OrmSession) -> None:
        ids = session.info.pop(self._info_key, None)
        if ids:
            with self._lock:
                self._pending.update(ids)

    def _after_rollback(self, session: OrmSession, _previous: Any) -> None:
        session.info.pop(self._info_key, None)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        event.listen(OrmSession, "after_flush", self._after_flush)
        event.listen(OrmSession, "after_commit", self._after_commit)
        event.listen(OrmSession, "after_soft_rollback", self._after_rollback)
        self._task = asyncio.create_task(self._run(), name="social-embed-listings")

    async def stop(self) -> None:
        for name, fn in (
            ("after_flush", self._after_flush),
            ("after_commit", self._after_commit),
            ("after_soft_rollback", self._after_rollback),
        ):
            if event.contains(OrmSession, name, fn):
                event.remove(OrmSession, name, fn)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await run_in_threadpool(self.drain)
            except ModelMissing as exc:
                log.warning("listings not embedded: %s", exc)
            except Exception:
                log.exception("embedding saved listings failed")

    def drain(self) -> int:
        """Embed the queued listings now (blocking); returns how many were (re)embedded."""
        with self._lock:
            ids, self._pending = sorted(self._pending), set()
        done = 0
        for listing_id in ids:
            with self.db.session() as session:
                listing = session.get(Listing, listing_id)
                if listing is not None and self.index.listing_saved(session, listing):
                    done += 1
        return done
