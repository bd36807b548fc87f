"""Show pages: schedule a show, manage it and its lineup, the host studio and the viewer page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from liveshow.accounts.models import User
from liveshow.closet import service as closet
from liveshow.errors import DomainError, Forbidden, NotFound, ValidationFailed
from liveshow.shows import service as shows
from liveshow.shows.models import Show
from liveshow.web.auth import ctx, current_user, require_user
from liveshow.web.forms import (
    form_dict,
    form_ids,
    origin,
    photo_store,
    read_form,
    read_photos,
    redirect,
    tz_offset,
)
from liveshow.web.rendering import render, render_async


def _closet_choices(request: Request, user: User) -> list[tuple[Any, str | None]]:
    assert user.id is not None
    with ctx(request).db.session() as session:
        listings = closet.listings_of(session, user.id, include_sold=False)
        photos = closet.first_photos(session, [x.id for x in listings if x.id is not None])
    return [(x, f"/uploads/{photos[x.id].thumb_filename}" if x.id in photos else None) for x in listings]


def new_show_page(request: Request) -> Response:
    user = current_user(request)
    if user is None:
        return redirect("/signin?next=/shows/new")
    return render(request, "show_form.html", show=None, values={}, choices=_closet_choices(request, user))


async def create_show(request: Request) -> Response:
    form = await read_form(request, max_files=1)
    user = await run_in_threadpool(require_user, request)
    values = form_dict(form)
    try:
        data = shows.parse_show(
            {**values, "listing_ids": form_ids(form, "listing_ids")}, tz_offset(values.get("tz"))
        )
        covers = await read_photos(request, form, "cover", thumb_side=shows.COVER_THUMB)

        def save() -> Show:
            with ctx(request).db.session() as session:
                return shows.create_show(
                    session, photo_store(request), user, data, covers[0] if covers else None
                )

        show = await run_in_threadpool(save)
    except DomainError as exc:
        choices = await run_in_threadpool(_closet_choices, request, user)
        return await render_async(
            request,
            "show_form.html",
            exc.status,
            show=None,
            values=values,
            error=exc.message,
            choices=choices,
        )
    return redirect(f"/shows/{show.id}/manage")


def _manage_context(request: Request, user: User, show_id: int) -> dict[str, Any]:
    with ctx(request).db.session() as session:
        show = shows.owned_show(session, user, show_id)
        entries = shows.lineup(session, show_id)
    in_lineup = {e.listing.id for e in entries}
    choices = [c for c in _closet_choices(request, user) if c[0].id not in in_lineup]
    return {
        "show": show,
        "lineup": entries,
        "choices": choices,
        "values": _values(show),
        "origin": origin(request),
    }


def manage_page(request: Request) -> Response:
    user = require_user(request)
    return render(
        request, "show_manage.html", **_manage_context(request, user, request.path_params["show_id"])
    )


async def update_show(request: Request) -> Response:
    show_id: int = request.path_params["show_id"]
    form = await read_form(request, max_files=1)
    user = await run_in_threadpool(require_user, request)
    values = form_dict(form)
    try:
        data = shows.parse_show(values, tz_offset(values.get("tz")), partial=True)
        covers = await read_photos(request, form, "cover", thumb_side=shows.COVER_THUMB)

        def save() -> None:
            with ctx(request).db.session() as session:
                shows.update_show(
                    session, photo_store(request), user, show_id, data, covers[0] if covers else None
                )

        await run_in_threadpool(save)
    except DomainError as exc:
        page = await run_in_threadpool(_manage_context, request, user, show_id)
        page["values"] = values
        return await render_async(request, "show_manage.html", exc.status, error=exc.message, **page)
    return redirect(f"/shows/{show_id}/manage")


async def lineup_action(request: Request) -> Response:
    """Add, move up or down, or remove: one small form per button on the manage page."""
    show_id: int = request.path_params["show_id"]
    action: str = request.path_params["action"]
    if action not in ("add", "up", "down", "remove"):
        raise NotFound("No such lineup action.")
    form = await read_form(request)
    user = await run_in_threadpool(require_user, request)
    listing_ids = form_ids(form, "listing_id")

    def apply() -> None:
        with ctx(request).db.session() as session:
            if action == "add":
                shows.add_to_lineup(session, user, show_id, listing_ids)
                return
            shows.owned_show(session, user, show_id)
            if len(listing_ids) != 1:
                raise ValidationFailed("Pick one item.")
            if action == "remove":
                shows.remove_from_lineup(session, user, show_id, listing_ids[0])
            else:
                shows.move_in_lineup(session, user, show_id, listing_ids[0], -1 if action == "up" else 1)

    try:
        await run_in_threadpool(apply)
    except DomainError as exc:
        if isinstance(exc, Forbidden):
            raise
        page = await run_in_threadpool(_manage_context, request, user, show_id)
        return await render_async(request, "show_manage.html", exc.status, error=exc.message, **page)
    return redirect(f"/shows/{show_id}/manage#lineup")


async def delete_show(request: Request) -> Response:
    await read_form(request)
    user = await run_in_threadpool(require_user, request)

    def delete() -> None:
        with ctx(request).db.session() as session:
            shows.delete_show(session, photo_store(request), user, request.path_params["show_id"])

    await run_in_threadpool(delete)
    return redirect(f"/closet/{user.username}")


def _show_context(request: Request, show: Show, user: User | None) -> dict[str, Any]:
    with ctx(request).db.session() as session:
        seller = session.get(User, show.seller_id)
        entries = shows.lineup(session, show.id or 0)
    return {
        "show": show,
        "seller": seller,
        "lineup": entries,
        "user": user,
        "cover_url": shows.cover_url(show),
    }


def viewer_page(request: Request) -> Response:
    user = current_user(request)
    with ctx(request).db.session() as session:
        show = shows.visible_show(session, user, request.path_params["show_id"])
    page = _show_context(request, show, user)
    return render(request, "show.html", is_host=user is not None and user.id == show.seller_id, **page)


def studio_page(request: Request) -> Response:
    user = current_user(request)
    if user is None:
        return redirect(f"/signin?next=/studio/{request.path_params['show_id']}")
    with ctx(request).db.session() as session:
        show = shows.owned_show(session, user, request.path_params["show_id"])
    page = _show_context(request, show, user)
    base = origin(request)
    video = "h264" if ctx(request).settings.studio_video == "h264" else "layered"
    return render(
        request, "studio.html", is_host=True, whip_url=f"{base}/whip/{show.id}", studio_video=video, **page
    )


def _values(show: Show) -> dict[str, str]:
    starts: datetime = show.starts_at
    return {
        "title": show.title,
        "description": show.description,
        "visibility": show.visibility,
        "starts_at_utc": starts.isoformat(),
    }


def routes() -> list[BaseRoute]:
    return [
        Route("/shows/new", new_show_page, methods=["GET"]),
        Route("/shows/new", create_show, methods=["POST"]),
        Route("/shows/{show_id:int}", viewer_page, methods=["GET"]),
        Route("/shows/{show_id:int}/manage", manage_page, methods=["GET"]),
        Route("/shows/{show_id:int}/edit", update_show, methods=["POST"]),
        Route("/shows/{show_id:int}/delete", delete_show, methods=["POST"]),
        Route("/shows/{show_id:int}/lineup/{action:str}", lineup_action, methods=["POST"]),
        Route("/studio/{show_id:int}", studio_page, methods=["GET"]),
    ]
