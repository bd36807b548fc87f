"""HTTP for search and similar listings ("More like this", "Shop the look")."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.closet.models import CATEGORIES
from liveshow.errors import ValidationFailed
from liveshow.social import search
from liveshow.social.http import path_int
from liveshow.social.likes import get_listing
from liveshow.social.similar import MAX_NEIGHBOURS
from liveshow.web.auth import ctx
from liveshow.web.rendering import render


def _params(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "") for k in request.query_params}


def search_page(request: Request) -> Response:
    try:
        query = search.parse(_params(request))
        error = ""
    except ValidationFailed as exc:
        query, error = search.Query(), exc.message
    with ctx(request).db.session() as session:
        results = search.search_all(session, query) if (query.terms or _has_filter(query)) else None
    return render(
        request,
        "search.html",
        query=query,
        error=error,
        results=results,
        categories=CATEGORIES,
        status_code=400 if error else 200,
    )


def _has_filter(q: search.Query) -> bool:
    return bool(q.size or q.brand or q.category or q.min_cents is not None or q.max_cents is not None)


def search_api(request: Request) -> Response:
    query = search.parse(_params(request))
    with ctx(request).db.session() as session:
        return JSONResponse(search.search_all(session, query))


def similar_api(request: Request) -> Response:
    listing_id = path_int(request, "listing_id")
    scope = request.query_params.get("scope", "all")
    if scope not in ("all", "seller"):
        raise ValidationFailed("scope must be all or seller.")
    raw_limit = request.query_params.get("limit", "8")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_NEIGHBOURS:
        raise ValidationFailed(f"limit must be 1 to {MAX_NEIGHBOURS}.")
    return JSONResponse({"listings": similar_items(request, listing_id, int(raw_limit), scope == "seller")})


def similar_items(
    conn: HTTPConnection, listing_id: int, limit: int = 8, same_seller: bool = False
) -> list[Any]:
    social = ctx(conn).social
    assert social is not None
    with ctx(conn).db.session() as session:
        listing = get_listing(session, listing_id)
        near = social.similar.similar(session, listing_id, limit, listing.seller_id if same_seller else None)
    return [{**search.listing_json(item), "score": round(score, 4)} for item, score in near]


def routes() -> list[BaseRoute]:
    return [
        Route("/search", search_page),
        Route("/api/search", search_api),
        Route("/api/listings/{listing_id}/similar", similar_api),
    ]
