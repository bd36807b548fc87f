"""The media service's view of the shows table: read a show, record live/ended (off the event loop)."""

from __future__ import annotations

from anyio import to_thread
from sqlmodel import select

from liveshow.clock import utcnow
from liveshow.db import Database
from liveshow.shows.models import Show


class ShowStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, show_id: int) -> Show | None:
        def read() -> Show | None:
            with self.db.session() as session:
                return session.get(Show, show_id)

        return await to_thread.run_sync(read)

    async def live_show_ids(self) -> list[int]:
        def read() -> list[int]:
            with self.db.session() as session:
                rows = session.exec(select(Show.id).where(Show.state == "live")).all()
                return [int(r) for r in rows if r is not None]

        return await to_thread.run_sync(read)

    async def set_state(self, show_id: int, state: str) -> None:
        """``live`` stamps went_live_at the first time; ``ended`` stamps ended_at."""

        def write() -> None:
            with self.db.session() as session:
                show = session.get(Show, show_id)
                if show is None:
                    return
                show.state = state
                if state == "live" and show.went_live_at is None:
                    show.went_live_at = utcnow()
                if state == "ended":
                    show.ended_at = utcnow()
                session.add(show)
                session.commit()

        await to_thread.run_sync(write)
