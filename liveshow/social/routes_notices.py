"""HTTP for the notification centre, notice preferences and Web Push subscriptions."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.context import WEB_DIR
from liveshow.errors import ValidationFailed
from liveshow.social import notices
from liveshow.social.http import read_json
from liveshow.social.service import SocialService
from liveshow.web.auth import check_csrf, ctx, current_user, require_user, require_user_async
from liveshow.web.rendering import render

# The largest id a database column holds (BIGINT): a larger one failed in the driver, a 500.
MAX_ID = 2**63 - 1


def social(request: Request) -> SocialService:
    service = ctx(request).social
    assert service is not None
    return service


def page(request: Request) -> Response:
    user = current_user(request)
    if user is None or user.id is None:
        return RedirectResponse("/signin?next=/notifications", status_code=303)
    with ctx(request).db.session() as session:
        items = notices.recent(session, user.id)
        prefs = notices.preferences(session, user.id)
    return render(
        request,
        "notifications.html",
        notices=items,
        prefs=prefs,
        kinds=notices.KINDS,
        vapid_key=social(request).push.public_key,
    )


def list_notices(request: Request) -> Response:
    user = require_user(request)
    assert user.id is not None
    try:
        after = int(request.query_params.get("after", "0"))
    except ValueError as exc:
        raise ValidationFailed("after must be a number.") from exc
    if after > MAX_ID:
        raise ValidationFailed(f"after must be at most {MAX_ID}.")
    with ctx(request).db.session() as session:
        items = notices.recent(session, user.id, after_id=max(0, after))
        unread = notices.unread_count(session, user.id)
    return JSONResponse({"unread": unread, "notices": [notices.as_json(n) for n in items]})


async def mark_read(request: Request) -> Response:
    await check_csrf(request)
    user = await require_user_async(request)
    assert user.id is not None
    data = await read_json(request)
    ids = data.get("ids")
    if ids is not None and (
        not isinstance(ids, list)
        or len(ids) > notices.PAGE
        or not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i <= MAX_ID for i in ids)
    ):
        raise ValidationFailed(f"ids must be a list of at most {notices.PAGE} notice ids.")
    user_id = user.id

    def run() -> tuple[int, int]:
        with ctx(request).db.session() as session:
            changed = notices.mark_read(session, user_id, ids)
            return changed, notices.unread_count(session, user_id)

    changed, unread = await run_in_threadpool(run)
    return JSONResponse({"marked": changed, "unread": unread})


def get_prefs(request: Request) -> Response:
    user = require_user(request)
    assert user.id is not None
    with ctx(request).db.session() as session:
        return JSONResponse({"preferences": notices.preferences(session, user.id), "kinds": notices.KINDS})


async def put_prefs(request: Request) -> Response:
    """Only ever the signed-in user's own preferences: there is no user id to name in the request."""
    await check_csrf(request)
    user = await require_user_async(request)
    assert user.id is not None
    data = await read_json(request)
    changes = data.get("preferences")
    if not isinstance(changes, dict) or set(data) - {"preferences"}:
        raise ValidationFailed('Send {"preferences": {kind: true|false, ...}} and nothing else.')
    user_id = user.id

    def run() -> dict[str, bool]:
        with ctx(request).db.session() as session:
            return notices.set_preferences(session, user_id, changes)

    return JSONResponse({"preferences": await run_in_threadpool(run)})


def vapid_key(request: Request) -> Response:
    return JSONResponse({"public_key": social(request).push.public_key})


async def subscribe(request: Request) -> Response:
    await check_csrf(request)
    user = await require_user_async(request)
    assert user.id is not None
    data = await read_json(request)
    user_id = user.id

    def run() -> int | None:
        with ctx(request).db.session() as session:
            return social(request).push.subscribe(session, user_id, data).id

    sub_id = await run_in_threadpool(run)
    return JSONResponse({"id": sub_id}, status_code=201)


async def unsubscribe(request: Request) -> Response:
    await check_csrf(request)
    user = await require_user_async(request)
    assert user.id is not None
    data = await read_json(request)
    endpoint = data.get("endpoint")
    if not isinstance(endpoint, str) or len(endpoint) > 1000:
        raise ValidationFailed("endpoint must be the subscription's URL.")
    user_id = user.id

    def run() -> bool:
        with ctx(request).db.session() as session:
            return social(request).push.unsubscribe(session, user_id, endpoint)

    return JSONResponse({"removed": await run_in_threadpool(run)})


def service_worker(request: Request) -> Response:
    # Served from the root so its scope covers every page (a worker's scope is its own folder).
    return FileResponse(
        WEB_DIR / "static" / "sw.js",
        media_type="application/javascript",
        headers={"Cache-Control": "no-cache"},
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/sw.js", service_worker),
        Route("/notifications", page),
        Route("/api/notices", list_notices),
        Route("/api/notices/read", mark_read, methods=["POST"]),
        Route("/api/notices/preferences", get_prefs, methods=["GET"]),
        Route("/api/notices/preferences", put_prefs, methods=["PUT", "POST"]),
        Route("/api/push/key", vapid_key),
        Route("/api/push/subscriptions", subscribe, methods=["POST"]),
        Route("/api/push/subscriptions", unsubscribe, methods=["DELETE"]),
    ]
