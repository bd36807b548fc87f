"""Giveaways over HTTP (host) and the room socket (viewers enter with one tap: ``giveaway.enter``)."""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.accounts.models import User
from liveshow.closet.models import Listing
from liveshow.context import AppContext
from liveshow.errors import NotAuthenticated, NotFound
from liveshow.social import giveaways
from liveshow.social.http import path_int, read_json, req_int
from liveshow.social.models import Giveaway
from liveshow.web.auth import check_csrf, ctx, require_user_async

log = logging.getLogger(__name__)


async def start(request: Request) -> Response:
    await check_csrf(request)
    host = await require_user_async(request)
    show_id = path_int(request, "show_id")
    listing_id = req_int(await read_json(request), "listing_id", 1, 2**31 - 1)
    context = ctx(request)

    def run() -> tuple[int, str, str]:
        with context.db.session() as session:
            g = giveaways.start(session, host, show_id, listing_id)
            listing = session.get(Listing, listing_id)
            assert g.id is not None and listing is not None
            return g.id, listing.title, giveaways.seed_hash(g.seed)

    giveaway_id, title, commitment = await run_in_threadpool(run)
    await context.showlog.publish(
        show_id,
        "giveaway.started",
        {"giveaway_id": giveaway_id, "listing_id": listing_id, "title": title, "seed_sha256": commitment},
    )
    return JSONResponse({"id": giveaway_id, "seed_sha256": commitment}, status_code=201)


async def draw(request: Request) -> Response:
    await check_csrf(request)
    host = await require_user_async(request)
    giveaway_id = path_int(request, "giveaway_id")
    context = ctx(request)
    return JSONResponse(await draw_and_announce(context, host, giveaway_id))


async def present_users(context: AppContext, show_id: int) -> set[int] | None:
    """Signed-in users in the show's room now, from the room's presence; None when there is no room
    service to ask (then every entrant counts: entering itself needed the room socket)."""
    presence = getattr(getattr(context, "room", None), "presence", None)
    if presence is None or not hasattr(presence, "viewers"):
        return None
    try:
        viewers = await presence.viewers(show_id)
    except Exception:
        log.exception("presence lookup failed; drawing among all entrants")
        return None
    return {v["user_id"] for v in viewers if isinstance(v, dict) and isinstance(v.get("user_id"), int)}


async def draw_and_announce(context: AppContext, host: User, giveaway_id: int) -> dict[str, Any]:
    def show_of() -> int:
        with context.db.session() as session:
            found = session.get(Giveaway, giveaway_id)
            if found is None:
                raise NotFound("No such giveaway.")
            return found.show_id

    present = await present_users(context, await run_in_threadpool(show_of))

    def run() -> tuple[Any, list[int], str]:
        with context.db.session() as session:
            g, entrants = giveaways.draw(session, host, giveaway_id, present=present)
            winner = session.get(User, g.winner_id)
            return g, entrants, (winner.username if winner else "")

    g, entrants, winner_name = await run_in_threadpool(run)
    data = {
        "giveaway_id": g.id,
        "listing_id": g.listing_id,
        "seed": g.seed,
        "entrants": entrants,
        "winner_id": g.winner_id,
        "winner": winner_name,
        "order_id": g.order_id,
        "algorithm": giveaways.ALGORITHM,
    }
    await context.showlog.publish(g.show_id, "giveaway.drawn", data)
    if context.social is not None and g.winner_id is not None:
        await context.social.notifier.notify(
            [g.winner_id],
            "giveaway",
            "You won the giveaway! Check your orders.",
            "/orders",
            show_id=g.show_id,
        )
    return data


def room_handlers(context: AppContext) -> dict[str, Any]:
    async def enter(show_id: int, user: User | None, message: dict[str, Any]) -> dict[str, Any]:
        if user is None:
            raise NotAuthenticated("Sign in to enter the giveaway.")

        def run() -> tuple[int, int]:
            with context.db.session() as session:
                g, count = giveaways.enter(session, user, show_id)
                assert g.id is not None
                return g.id, count

        giveaway_id, count = await run_in_threadpool(run)
        await context.showlog.publish(
            show_id, "giveaway.entries", {"giveaway_id": giveaway_id, "count": count}
        )
        return {"type": "giveaway.entered", "giveaway_id": giveaway_id, "entries": count}

    return {"giveaway.enter": enter}


def routes() -> list[BaseRoute]:
    return [
        Route("/api/shows/{show_id}/giveaways", start, methods=["POST"]),
        Route("/api/giveaways/{giveaway_id}/draw", draw, methods=["POST"]),
    ]
