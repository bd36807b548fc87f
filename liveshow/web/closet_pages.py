"""Closet pages: a seller's profile and closet, the listing page, and the listing forms."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from liveshow.accounts.models import User
from liveshow.accounts.service import get_user_by_name
from liveshow.closet import service as closet
from liveshow.closet.models import CATEGORIES, CONDITIONS, Listing
from liveshow.errors import DomainError, NotFound
from liveshow.shows.models import Show
from liveshow.shows.service import cover_url
from liveshow.web.auth import ctx, current_user, require_user
from liveshow.web.forms import form_dict, form_ids, photo_store, read_form, read_photos, redirect
from liveshow.web.rendering import render, render_async

FORM_CHOICES: dict[str, Any] = {"conditions": CONDITIONS, "categories": CATEGORIES}


def closet_page(request: Request) -> Response:
    viewer = current_user(request)
    with ctx(request).db.session() as session:
        seller = get_user_by_name(session, request.path_params["username"])
        if seller is None or not seller.is_active:
            raise NotFound("No such seller.")
        assert seller.id is not None
        own = viewer is not None and viewer.id == seller.id
        listings = closet.listings_of(session, seller.id)
        photos = closet.first_photos(session, [x.id for x in listings if x.id is not None])
        query = select(Show).where(Show.seller_id == seller.id, Show.state != "ended")
        if not own:
            query = query.where(Show.visibility == "public")
        shows = session.exec(query.order_by(col(Show.starts_at))).all()
    cards = [(x, photos.get(x.id) if x.id is not None else None) for x in listings]
    return render(
        request,
        "closet.html",
        seller=seller,
        own=own,
        available=[c for c in cards if c[0].status == "available"],
        sold=[c for c in cards if c[0].status != "available"],
        shows=[(s, cover_url(s)) for s in shows],
    )


def listing_page(request: Request) -> Response:
    viewer = current_user(request)
    with ctx(request).db.session() as session:
        listing = closet.get_listing(session, request.path_params["listing_id"])
        seller = session.get(User, listing.seller_id)
        photos = closet.photos_of(session, request.path_params["listing_id"])
    return render(
        request,
        "listing.html",
        listing=listing,
        seller=seller,
        photos=photos,
        own=viewer is not None and viewer.id == listing.seller_id,
    )


def new_listing_page(request: Request) -> Response:
    if current_user(request) is None:
        return redirect("/signin?next=/listings/new")
    return render(request, "listing_form.html", listing=None, values={"quantity": "1"}, **FORM_CHOICES)


async def create_listing(request: Request) -> Response:
    form = await read_form(request, max_files=ctx(request).settings.max_photos_per_listing)
    user = await run_in_threadpool(require_user, request)
    values = form_dict(form)
    try:
        data = closet.parse_listing(values)
        # Decoding every photo comes before any write: a bad photo leaves nothing behind.
        photos = await read_photos(request, form, "photos")

        def save() -> Listing:
            with ctx(request).db.session() as session:
                return closet.create_listing(session, photo_store(request), user, data, photos)

        listing = await run_in_threadpool(save)
    except DomainError as exc:
        return await render_async(
            request,
            "listing_form.html",
            exc.status,
            listing=None,
            values=values,
            error=exc.message,
            **FORM_CHOICES,
        )
    return redirect(f"/listings/{listing.id}")


def edit_listing_page(request: Request) -> Response:
    user = require_user(request)
    with ctx(request).db.session() as session:
        listing = closet.owned_listing(session, user, request.path_params["listing_id"])
        photos = closet.photos_of(session, request.path_params["listing_id"])
    return render(
        request, "listing_form.html", listing=listing, photos=photos, values=_values(listing), **FORM_CHOICES
    )


async def update_listing(request: Request) -> Response:
    listing_id: int = request.path_params["listing_id"]
    form = await read_form(request, max_files=ctx(request).settings.max_photos_per_listing)
    user = await run_in_threadpool(require_user, request)
    values = form_dict(form)
    store = photo_store(request)
    try:
        data = closet.parse_listing(values)
        removed = form_ids(form, "remove_photo")
        photos = await read_photos(request, form, "photos")

        def save() -> None:
            with ctx(request).db.session() as session:
                closet.edit_listing(session, store, user, listing_id, data, removed, photos)

        await run_in_threadpool(save)
    except DomainError as exc:

        def reload() -> tuple[Listing, list[Any]]:
            with ctx(request).db.session() as session:
                return closet.owned_listing(session, user, listing_id), closet.photos_of(session, listing_id)

        listing, current = await run_in_threadpool(reload)
        return await render_async(
            request,
            "listing_form.html",
            exc.status,
            listing=listing,
            photos=current,
            values=values,
            error=exc.message,
            **FORM_CHOICES,
        )
    return redirect(f"/listings/{listing_id}")


async def delete_listing(request: Request) -> Response:
    await read_form(request)
    user = await run_in_threadpool(require_user, request)

    def delete() -> None:
        with ctx(request).db.session() as session:
            closet.delete_listing(session, photo_store(request), user, request.path_params["listing_id"])

    await run_in_threadpool(delete)
    return redirect(f"/closet/{user.username}")


async def mark_sold(request: Request) -> Response:
    form = await read_form(request)
    user = await run_in_threadpool(require_user, request)
    sold = form.get("sold", "1") != "0"

    def change() -> None:
        with ctx(request).db.session() as session:
            closet.set_status(session, user, request.path_params["listing_id"], sold)

    await run_in_threadpool(change)
    return redirect(f"/listings/{request.path_params['listing_id']}")


def _values(listing: Listing) -> dict[str, str]:
    return {
        "title": listing.title,
        "description": listing.description,
        "brand": listing.brand,
        "size": listing.size,
        "condition": listing.condition,
        "category": listing.category,
        "price": f"{listing.price_cents // 100}.{listing.price_cents % 100:02d}",
        "quantity": str(listing.quantity),
    }


def routes() -> list[BaseRoute]:
    return [
        Route("/closet/{username}", closet_page, methods=["GET"]),
        Route("/listings/new", new_listing_page, methods=["GET"]),
        Route("/listings/new", create_listing, methods=["POST"]),
        Route("/listings/{listing_id:int}", listing_page, methods=["GET"]),
        Route("/listings/{listing_id:int}/edit", edit_listing_page, methods=["GET"]),
        Route("/listings/{listing_id:int}/edit", update_listing, methods=["POST"]),
        Route("/listings/{listing_id:int}/delete", delete_listing, methods=["POST"]),
        Route("/listings/{listing_id:int}/sold", mark_sold, methods=["POST"]),
    ]
