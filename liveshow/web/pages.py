"""Server-rendered pages. Handlers are plain functions: Starlette runs them in a thread pool."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from liveshow.accounts.models import User
from liveshow.context import AppContext
from liveshow.shows.models import LineupItem, Show
from liveshow.shows.service import cover_url
from liveshow.web import account_pages, api, closet_pages, show_events, show_pages
from liveshow.web.auth import ctx
from liveshow.web.rendering import render

SECTION_LIMIT = 24


@dataclass(frozen=True)
class ShowCard:
    show: Show
    seller: User
    cover_url: str | None
    items: int


def home(request: Request) -> Response:
    with ctx(request).db.session() as session:

        def cards(state: str, newest_first: bool) -> list[ShowCard]:
            order = col(Show.starts_at).desc() if newest_first else col(Show.starts_at)
            rows = session.exec(
                select(Show, User)
                .join(User, col(User.id) == Show.seller_id)
                .where(Show.visibility == "public", Show.state == state)
                .order_by(order)
                .limit(SECTION_LIMIT)
            ).all()
            ids = [show.id for show, _ in rows]
            counts: dict[int, int] = {}
            for item in session.exec(select(LineupItem).where(col(LineupItem.show_id).in_(ids))).all():
                counts[item.show_id] = counts.get(item.show_id, 0) + 1
            return [ShowCard(s, u, cover_url(s), counts.get(s.id or 0, 0)) for s, u in rows]

        live = cards("live", newest_first=True)
        upcoming = cards("scheduled", newest_first=False)
        replays = cards("ended", newest_first=True)
    return render(request, "home.html", live=live, upcoming=upcoming, replays=replays)


def routes(context: AppContext) -> list[BaseRoute]:
    return [
        Route("/", home, name="home"),
        *account_pages.routes(),
        *closet_pages.routes(),
        *show_pages.routes(),
        *api.routes(),
        *show_events.routes(),
    ]
