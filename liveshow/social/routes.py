"""HTTP for likes, follows and the social partials; ``install(context)`` wires the whole package."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.context import AppContext
from liveshow.social import (
    follows,
    likes,
    notices,
    routes_analytics,
    routes_discovery,
    routes_giveaways,
    routes_notices,
    routes_offers,
    routes_onboarding,
)
from liveshow.social.embedder import Embedder
from liveshow.social.http import opt_bool, path_int, read_json
from liveshow.social.listing_hook import ListingHook
from liveshow.social.notifier import Notifier
from liveshow.social.service import SocialService
from liveshow.social.similar import SimilarIndex
from liveshow.social.watcher import ShowWatcher
from liveshow.social.webpush import WebPush
from liveshow.web.auth import check_csrf, ctx, current_user, require_user, require_user_async


async def like(request: Request) -> Response:
    await check_csrf(request)
    user = await require_user_async(request)
    listing_id = path_int(request, "listing_id")
    want = opt_bool(await read_json(request), "liked")

    def run() -> tuple[bool, int]:
        with ctx(request).db.session() as session:
            return likes.set_like(session, user, listing_id, want)

    liked, count = await run_in_threadpool(run)
    return JSONResponse({"liked": liked, "count": count})


def like_state(request: Request) -> Response:
    listing_id = path_int(request, "listing_id")
    user = current_user(request)
    with ctx(request).db.session() as session:
        likes.get_listing(session, listing_id)
        return JSONResponse(
            {
                "count": likes.like_count(session, listing_id),
                "liked": likes.has_liked(session, user.id if user else None, listing_id),
            }
        )


def likers(request: Request) -> Response:
    user = require_user(request)
    listing_id = path_int(request, "listing_id")
    with ctx(request).db.session() as session:
        people = likes.likers(session, user, listing_id)
    return JSONResponse(
        {"likers": [{"id": u.id, "username": u.username, "display_name": u.display_name} for u in people]}
    )


async def follow(request: Request) -> Response:
    await check_csrf(request)
    user = await require_user_async(request)
    username = str(request.path_params["username"])
    want = opt_bool(await read_json(request), "following")

    def run() -> tuple[bool, int]:
        with ctx(request).db.session() as session:
            return follows.set_follow(session, user, follows.get_seller(session, username), want)

    following, count = await run_in_threadpool(run)
    return JSONResponse({"following": following, "followers": count})


def follow_state(request: Request) -> Response:
    user = current_user(request)
    with ctx(request).db.session() as session:
        seller = follows.get_seller(session, str(request.path_params["username"]))
        assert seller.id is not None
        return JSONResponse(
            {
                "followers": follows.follower_count(session, seller.id),
                "following": follows.is_following(session, user.id if user else None, seller.id),
            }
        )


# ---------------------------------------------------------------- template helpers (Jinja globals)


def _like_info(conn: HTTPConnection, listing_id: int) -> dict[str, Any]:
    user = current_user(conn)
    with ctx(conn).db.session() as session:
        return {
            "count": likes.like_count(session, listing_id),
            "liked": likes.has_liked(session, user.id if user else None, listing_id),
        }


def _follow_info(conn: HTTPConnection, seller_id: int) -> dict[str, Any]:
    user = current_user(conn)
    with ctx(conn).db.session() as session:
        return {
            "count": follows.follower_count(session, seller_id),
            "following": follows.is_following(session, user.id if user else None, seller_id),
        }


def _unread(conn: HTTPConnection) -> int:
    user = current_user(conn)
    if user is None or user.id is None:
        return 0
    with ctx(conn).db.session() as session:
        return notices.unread_count(session, user.id)


def install(context: AppContext) -> list[BaseRoute]:
    settings = context.settings
    push = WebPush(settings.data_dir, context.db, settings.push_subject, allow_http=settings.push_allow_http)
    notifier = Notifier(context.db, context.showlog, push)
    watcher = ShowWatcher(context.db, context.bus, notifier)
    similar = SimilarIndex(context.db, Embedder())
    hook = ListingHook(context.db, similar)
    context.on_startup.append(hook.start)
    context.on_shutdown.append(hook.stop)
    context.social = SocialService(notifier=notifier, push=push, watcher=watcher, similar=similar)
    context.on_startup.append(watcher.start)
    context.on_shutdown.append(watcher.stop)
    context.room_handlers.update(routes_giveaways.room_handlers(context))
    env = context.templates.env
    env.globals["social_like"] = _like_info
    env.globals["social_follow"] = _follow_info
    env.globals["social_unread"] = _unread
    env.globals["social_similar"] = routes_discovery.similar_items
    return [
        Route("/api/listings/{listing_id}/like", like, methods=["POST"]),
        Route("/api/listings/{listing_id}/likes", like_state),
        Route("/api/listings/{listing_id}/likers", likers),
        Route("/api/sellers/{username}/follow", follow, methods=["POST"]),
        Route("/api/sellers/{username}/followers", follow_state),
        *routes_notices.routes(),
        *routes_discovery.routes(),
        *routes_onboarding.routes(),
        *routes_offers.routes(),
        *routes_giveaways.routes(),
        *routes_analytics.routes(),
    ]
