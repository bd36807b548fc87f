"""Server-rendered pages. Handlers are plain functions: Starlette runs them in a thread pool."""

from __future__ import annotations

from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from liveshow.context import AppContext
from liveshow.shows.models import Show
from liveshow.web.auth import ctx
from liveshow.web.rendering import render


def home(request: Request) -> Response:
    with ctx(request).db.session() as session:
        shows = session.exec(
            select(Show).where(Show.visibility == "public").order_by(col(Show.starts_at))
        ).all()
    return render(
        request,
        "home.html",
        live=[s for s in shows if s.state == "live"],
        upcoming=[s for s in shows if s.state == "scheduled"],
        replays=[s for s in shows if s.state == "ended"],
    )


def routes(context: AppContext) -> list[BaseRoute]:
    return [Route("/", home, name="home")]
