"""The follower hook: watches shows and turns their lifecycle into notices.

Design: no other service has to call us. Every ``interval`` seconds the watcher reads the shows that are
scheduled or live; a newly scheduled show is announced to its seller's followers, and for each such
show it subscribes to the show's bus topic (``show:{id}``). There it reacts to

- ``show.state`` ``{"state": "live"}`` -> followers get "X is live";
- ``presence`` ``{"count": N}`` -> a viewer-count sample for the seller's analytics (every 5 s at most);
- ``lot.opened`` ``{"lot": {"listing_id": N}}`` -> the listing's likers get "the X you liked is up now" (as a
  private room event, so those present see a toast at once);
- ``order.created`` ``{"listing_id": N, "order_id": M}`` -> the seller hears of the sale (the first one
  is celebrated and leads to the share card);
- ``show.state`` ``{"state": "ended"}`` -> stop watching.

A show found already live in the database (went live between two scans) is announced too. Each
announcement is claimed once in ``notice_fanouts`` so several processes never announce it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from liveshow.accounts.models import User
from liveshow.bus import Bus, Event
from liveshow.clock import utcnow
from liveshow.closet.models import Listing
from liveshow.db import Database
from liveshow.showlog import show_topic
from liveshow.shows.models import Show
from liveshow.social import follows, likes, onboarding
from liveshow.social.models import ViewerSample
from liveshow.social.notifier import Notifier

log = logging.getLogger(__name__)
# Shows older than this when first seen are not announced (e.g. when the feature is first deployed).
FRESH = timedelta(hours=6)


class ShowWatcher:
    def __init__(self, db: Database, bus: Bus, notifier: Notifier, interval: float = 1.0) -> None:
        self.db = db
        self.bus = bus
        self.notifier = notifier
        self.interval = interval
        self._watching: dict[int, asyncio.Task[None]] = {}
        self._subscribed: set[int] = set()
        self._sampled: dict[int, datetime] = {}
        # The show announcements this process has claimed or seen claimed, by show: the scan comes
        # back to every open show each second, and asking the database again (an INSERT refused as a
        # duplicate) cost a statement per live show per second per process, for hours.
        self._asked: dict[int, set[str]] = {}
        self.sample_seconds = 5.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._scan_forever(), name="social-show-watcher")

    async def stop(self) -> None:
        tasks = [t for t in [self._task, *self._watching.values()] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._watching.clear()
        self._task = None
        await self.notifier.drain()

    async def _scan_forever(self) -> None:
        while True:
            try:
                await self.scan()
            except Exception:
                log.exception("show watcher scan failed")
            await asyncio.sleep(self.interval)

    async def scan(self) -> None:
        shows = await run_in_threadpool(self._open_shows)
        for show in shows:
            assert show.id is not None
            fresh = utcnow() - _aware(show.created_at) < FRESH
            if show.state == "scheduled" and fresh and show.visibility == "public":
                await self.announce_scheduled(show)
            if show.state == "live" and show.visibility == "public":
                went = _aware(show.went_live_at or show.created_at)
                if utcnow() - went < FRESH:
                    await self.announce_live(show.id)
            if show.id not in self._watching:
                self._watching[show.id] = asyncio.create_task(self._watch(show.id), name=f"watch-{show.id}")
        for show_id, task in list(self._watching.items()):
            if task.done():
                del self._watching[show_id]
        open_ids = {show.id for show in shows}
        for show_id in [s for s in self._asked if s not in open_ids]:
            del self._asked[show_id]

    async def _claim_once(self, show_id: int, key: str) -> bool:
        """Whether this process is the one to announce ``key`` of the show, asked of the database once
        per process (an error is not an answer: asked again next time)."""
        asked = self._asked.setdefault(show_id, set())
        if key in asked:
            return False
        claimed: bool = await run_in_threadpool(self.notifier.claim_fanout, key)
        asked.add(key)
        return claimed

    def _open_shows(self) -> list[Show]:
        with self.db.session() as session:
            rows = session.exec(select(Show).where(col(Show.state).in_(["scheduled", "live"])).limit(5000))
            return list(rows)

    def is_watching(self, show_id: int) -> bool:
        """True once the show's events reach the watcher (it subscribes on its next scan)."""
        return show_id in self._subscribed

    async def _watch(self, show_id: int) -> None:
        sub = self.bus.subscribe(show_topic(show_id))
        self._subscribed.add(show_id)
        try:
            async for event in sub:
                if await self.on_event(show_id, event):
                    return
        finally:
            self._subscribed.discard(show_id)
            sub.close()

    async def on_event(self, show_id: int, event: Event) -> bool:
        """React to one show event; True when the show ended (stop watching)."""
        if event.type == "show.state":
            state = event.data.get("state")
            if state == "live":
                await self.announce_live(show_id)
            return state == "ended"
        listing_id = event.data.get("listing_id")
        lot = event.data.get("lot")
        if listing_id is None and isinstance(lot, dict):
            listing_id = lot.get("listing_id")  # the auction nests the item card under "lot"
        if event.type == "presence" and isinstance(event.data.get("count"), int):
            await self.sample_viewers(show_id, event.data["count"])
        if event.type == "lot.opened" and isinstance(listing_id, int):
            await self.announce_lot(show_id, listing_id)
        if event.type == "order.created" and isinstance(listing_id, int):
            await self.announce_sale(listing_id, event.data.get("order_id"))
        return False

    async def announce_scheduled(self, show: Show) -> None:
        assert show.id is not None
        if not await self._claim_once(show.id, f"scheduled:{show.id}"):
            return
        seller, fans = await run_in_threadpool(self._seller_and_followers, show.seller_id)
        when = _aware(show.starts_at).strftime("%b %d, %H:%M UTC")
        text = f"{seller} scheduled a show: {show.title} ({when})"
        await self.notifier.notify(fans, "show_scheduled", text, f"/shows/{show.id}")

    async def announce_live(self, show_id: int) -> None:
        if not await self._claim_once(show_id, f"live:{show_id}"):
            return
        show = await run_in_threadpool(self._show, show_id)
        if show is None or show.visibility != "public":
            return
        seller, fans = await run_in_threadpool(self._seller_and_followers, show.seller_id)
        text = f"{seller} is live now: {show.title}"
        await self.notifier.notify(fans, "show_live", text, f"/shows/{show_id}", show_id=show_id)

    async def announce_lot(self, show_id: int, listing_id: int) -> None:
        if not await run_in_threadpool(self.notifier.claim_fanout, f"lot:{show_id}:{listing_id}"):
            return
        title, fans = await run_in_threadpool(self._listing_and_likers, listing_id)
        if title is None:
            return
        text = f"The {title} you liked is up now!"
        await self.notifier.notify(fans, "liked_up_now", text, f"/shows/{show_id}", show_id=show_id)

    async def announce_sale(self, listing_id: int, order_id: object) -> None:
        key = f"sale:{order_id}" if isinstance(order_id, int) else f"sale:{listing_id}:{utcnow().timestamp()}"
        if not await run_in_threadpool(self.notifier.claim_fanout, key):
            return
        found = await run_in_threadpool(self._first_sale_check, listing_id)
        if found is None:
            return
        seller_id, title, first = found
        if first:
            text, url = f"You made your first sale: {title}! Share it.", "/sell/start"
        else:
            text, url = f"You sold {title}.", "/orders"
        await self.notifier.notify([seller_id], "sale", text, url)

    def _first_sale_check(self, listing_id: int) -> tuple[int, str, bool] | None:
        with self.db.session() as session:
            listing = session.get(Listing, listing_id)
            if listing is None:
                return None
            first = onboarding.record(session, listing.seller_id, "first_sale", listing_id)
            return listing.seller_id, listing.title, first

    async def sample_viewers(self, show_id: int, count: int) -> None:
        # Presence events are not archived (they come often); analytics keeps one sample per few seconds.
        now = utcnow()
        last = self._sampled.get(show_id)
        if last is not None and (now - last).total_seconds() < self.sample_seconds:
            return
        self._sampled[show_id] = now
        await run_in_threadpool(self._store_sample, show_id, count, now)

    def _store_sample(self, show_id: int, count: int, at: datetime) -> None:
        with self.db.session() as session:
            session.add(ViewerSample(show_id=show_id, viewers=max(0, count), at=at))
            session.commit()

    def _show(self, show_id: int) -> Show | None:
        with self.db.session() as session:
            return session.get(Show, show_id)

    def _seller_and_followers(self, seller_id: int) -> tuple[str, list[int]]:
        with self.db.session() as session:
            seller = session.get(User, seller_id)
            name = (seller.display_name or seller.username) if seller else "A seller"
            return name, follows.follower_ids(session, seller_id)

    def _listing_and_likers(self, listing_id: int) -> tuple[str | None, list[int]]:
        with self.db.session() as session:
            listing = session.get(Listing, listing_id)
            if listing is None:
                return None, []
            return listing.title, likes.liker_ids(session, listing_id)


def _aware(value: datetime) -> datetime:
    # SQLite hands datetimes back naive; they were stored as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
