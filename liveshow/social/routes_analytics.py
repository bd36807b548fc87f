"""The seller's analytics page: per show figures and charts (inline SVG)."""

from __future__ import annotations

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.errors import Forbidden, NotFound
from liveshow.shows.models import Show
from liveshow.social import analytics, charts
from liveshow.social.http import path_int
from liveshow.web.auth import ctx, current_user, require_user
from liveshow.web.rendering import render


def _card(stats: analytics.ShowStats) -> dict[str, object]:
    return {
        "stats": stats,
        # Built from numbers and escaped labels only, so it is safe to mark as markup.
        "viewers_svg": Markup(charts.line_chart(stats.viewers, "Viewers over time")),
        "revenue_svg": Markup(charts.line_chart(stats.revenue, "Revenue", money=True, step=True)),
    }


def page(request: Request) -> Response:
    user = current_user(request)
    if user is None or user.id is None:
        return RedirectResponse("/signin?next=/sell/analytics", status_code=303)
    with ctx(request).db.session() as session:
        cards = [_card(analytics.show_stats(session, s)) for s in analytics.seller_shows(session, user.id)]
    return render(request, "seller_analytics.html", cards=cards)


def show_api(request: Request) -> Response:
    user = require_user(request)
    show_id = path_int(request, "show_id")
    with ctx(request).db.session() as session:
        show = session.get(Show, show_id)
        if show is None:
            raise NotFound("No such show.")
        if show.seller_id != user.id:
            raise Forbidden("Only the show's seller sees its analytics.")
        s = analytics.show_stats(session, show)
    return JSONResponse(
        {
            "show_id": s.show_id,
            "peak_viewers": s.peak_viewers,
            "viewers": s.viewers,
            "items_shown": s.items_shown,
            "claims": s.claims,
            "bids": s.bids,
            "sales": s.sales,
            "buyers": s.buyers,
            "revenue_cents": s.revenue_cents,
            "conversion_percent": s.conversion,
            "revenue": s.revenue,
        }
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/sell/analytics", page),
        Route("/api/shows/{show_id}/analytics", show_api),
    ]
