"""Replay HTTP: the page, its timeline, the recording file (with range requests), deletion, re-air."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.accounts.models import User
from liveshow.errors import NotFound, ValidationFailed
from liveshow.jsonbody import read_json
from liveshow.replay.access import ensure_playable, open_replay, parse_start, still_for_sale, timeline
from liveshow.replay.reair import ReAirService
from liveshow.replay.service import RecordingService
from liveshow.replay.shop import buy_from_replay
from liveshow.shows.models import Show
from liveshow.web.auth import check_csrf, ctx, current_user, require_user
from liveshow.web.forms import form_ids, read_form
from liveshow.web.rendering import render

# starts_at and a title: a few hundred bytes; the limit leaves room and no more.
REAIR_BODY_BYTES = 4096


def routes(service: RecordingService, reair: ReAirService) -> list[BaseRoute]:
    def replay_page(request: Request) -> Response:
        show_id = int(request.path_params["show_id"])
        user = current_user(request)
        with ctx(request).db.session() as session:
            replay = open_replay(session, service.directory, show_id, user)
            start = parse_start(request.query_params.get("t"), replay.recording.duration_ms)
            ensure_playable(replay)
            seller = session.get(User, replay.show.seller_id)
            for_sale = still_for_sale(session, replay.show)
        is_seller = user is not None and user.id == replay.show.seller_id
        return render(
            request,
            "replay.html",
            show=replay.show,
            seller=seller,
            replay=replay,
            start=start,
            for_sale=for_sale,
            is_seller=is_seller,
            viewer=user,
            can_buy=getattr(ctx(request), "auction", None) is not None,
        )

    def timeline_api(request: Request) -> Response:
        show_id = int(request.path_params["show_id"])
        with ctx(request).db.session() as session:
            replay = open_replay(session, service.directory, show_id, current_user(request))
            return JSONResponse(timeline(session, replay))

    def recording_file(request: Request) -> Response:
        show_id = int(request.path_params["show_id"])
        with ctx(request).db.session() as session:
            replay = open_replay(session, service.directory, show_id, current_user(request))
        if request.path_params["name"] != replay.recording.path:
            raise NotFound("No such recording file.")
        private = replay.show.visibility == "private"
        return FileResponse(
            replay.path,
            media_type=replay.content_type,
            headers={"Cache-Control": "private, max-age=300" if private else "public, max-age=3600"},
        )

    async def delete_api(request: Request) -> Response:
        await run_in_threadpool(require_user, request)
        await check_csrf(request)
        count = await run_in_threadpool(_delete, request)
        return JSONResponse({"deleted": count})

    async def delete_form(request: Request) -> Response:
        await check_csrf(request)
        await run_in_threadpool(_delete, request)
        return RedirectResponse(f"/shows/{request.path_params['show_id']}", status_code=303)

    def _delete(request: Request) -> int:
        user = require_user(request)
        assert user.id is not None
        with ctx(request).db.session() as session:
            show = session.get(Show, int(request.path_params["show_id"]))
            if show is None:
                raise NotFound("No such show.")
            return service.delete(session, show, user.id)

    async def reair_api(request: Request) -> Response:
        user = await run_in_threadpool(require_user, request)
        await check_csrf(request)
        body = await read_json(request, max_bytes=REAIR_BODY_BYTES, empty_ok=True)
        show, row = await reair.schedule(int(request.path_params["show_id"]), user, body)
        return JSONResponse(
            {
                "id": show.id,
                "reair_id": row.id,
                "page_url": f"/shows/{show.id}",
                "starts_at": show.starts_at.isoformat(),
            },
            status_code=201,
        )

    async def reair_form(request: Request) -> Response:
        user = await run_in_threadpool(require_user, request)
        await check_csrf(request)
        show, _row = await reair.schedule(int(request.path_params["show_id"]), user, {})
        return RedirectResponse(f"/shows/{show.id}", status_code=303)

    async def buy_form(request: Request) -> Response:
        form = await read_form(request)  # checks the CSRF token first
        user = await run_in_threadpool(require_user, request)
        listing_ids = form_ids(form, "listing_id")
        if len(listing_ids) != 1:
            raise ValidationFailed("Pick one item.")

        def buy() -> None:
            with ctx(request).db.session() as session:
                replay = open_replay(session, service.directory, int(request.path_params["show_id"]), user)
                window = ctx(request).settings.payment_window_minutes
                buy_from_replay(session, replay.show, user, listing_ids[0], window)

        await run_in_threadpool(buy)
        return RedirectResponse("/orders", status_code=303)

    return [
        Route("/shows/{show_id:int}/replay", replay_page, methods=["GET"]),
        Route("/shows/{show_id:int}/replay/buy", buy_form, methods=["POST"]),
        Route("/shows/{show_id:int}/replay/delete", delete_form, methods=["POST"]),
        Route("/shows/{show_id:int}/reair", reair_form, methods=["POST"]),
        Route("/api/shows/{show_id:int}/timeline", timeline_api, methods=["GET"]),
        Route("/api/shows/{show_id:int}/recording", delete_api, methods=["DELETE"]),
        Route("/api/shows/{show_id:int}/reair", reair_api, methods=["POST"]),
        Route("/recordings/{show_id:int}/{name:str}", recording_file, methods=["GET", "HEAD"]),
    ]
