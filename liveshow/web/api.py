"""JSON API for scripts and the browser: shows and listings. Session cookie + X-CSRF-Token header, or
`Authorization: Bearer {api_token}` (from `liveshow token NAME` or the settings page)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.accounts.models import User
from liveshow.accounts.service import get_user_by_name
from liveshow.closet import fields
from liveshow.closet import service as closet
from liveshow.errors import NotFound, ValidationFailed
from liveshow.jsonbody import read_json, read_limited
from liveshow.shows import service as shows
from liveshow.web.auth import check_csrf, ctx, current_user, require_user
from liveshow.web.forms import origin, photo_store

# ------------------------------------------------------------------ shows


async def create_show(request: Request) -> Response:
    user = await run_in_threadpool(require_user, request)
    await check_csrf(request)
    body = await read_json(request)
    data = shows.parse_show(body)
    base = origin(request)

    def save() -> dict[str, Any]:
        with ctx(request).db.session() as session:
            show = shows.create_show(session, photo_store(request), user, data)
            return shows.show_json(show, user, shows.lineup(session, show.id or 0), base, owner=True)

    return JSONResponse(await run_in_threadpool(save), status_code=201)


def get_show(request: Request) -> Response:
    user = current_user(request)  # a sync handler: Starlette runs it in a worker thread
    with ctx(request).db.session() as session:
        show = shows.visible_show(session, user, request.path_params["show_id"])
        seller = session.get(User, show.seller_id)
        assert seller is not None
        owner = user is not None and user.id == show.seller_id
        data = shows.show_json(show, seller, shows.lineup(session, show.id or 0), origin(request), owner)
    return JSONResponse(data)


async def put_lineup(request: Request) -> Response:
    user = await run_in_threadpool(require_user, request)
    await check_csrf(request)
    body = await read_json(request)
    if "listing_ids" not in body:
        raise ValidationFailed("listing_ids: required.")
    ids = fields.id_list(body["listing_ids"], "listing_ids", shows.MAX_LINEUP)
    show_id: int = request.path_params["show_id"]

    def save() -> dict[str, Any]:
        with ctx(request).db.session() as session:
            shows.set_lineup(session, user, show_id, ids)
            show = shows.get_show(session, show_id)
            return shows.show_json(show, user, shows.lineup(session, show_id), origin(request), owner=True)

    return JSONResponse(await run_in_threadpool(save))


# ------------------------------------------------------------------ listings


def list_listings(request: Request) -> Response:
    """`?seller=NAME` lists a seller's closet; without it, the caller's own."""
    name = request.query_params.get("seller")
    with ctx(request).db.session() as session:
        seller = get_user_by_name(session, name) if name else require_user(request)
        if seller is None or seller.id is None:
            raise NotFound("No such seller.")
        listings = closet.listings_of(session, seller.id)
        items = [closet.listing_json(x, closet.photos_of(session, x.id or 0)) for x in listings]
    return JSONResponse({"listings": items})


async def create_listing(request: Request) -> Response:
    user = await run_in_threadpool(require_user, request)
    await check_csrf(request)
    data = closet.parse_listing(await read_json(request))

    def save() -> dict[str, Any]:
        with ctx(request).db.session() as session:
            listing = closet.create_listing(session, photo_store(request), user, data, [])
            return closet.listing_json(listing, [])

    return JSONResponse(await run_in_threadpool(save), status_code=201)


def get_listing(request: Request) -> Response:
    with ctx(request).db.session() as session:
        listing = closet.get_listing(session, request.path_params["listing_id"])
        data = closet.listing_json(listing, closet.photos_of(session, listing.id or 0))
    return JSONResponse(data)


async def update_listing(request: Request) -> Response:
    user = await run_in_threadpool(require_user, request)
    await check_csrf(request)
    body = await read_json(request)
    listing_id: int = request.path_params["listing_id"]

    def save() -> dict[str, Any]:
        with ctx(request).db.session() as session:
            current = closet.owned_listing(session, user, listing_id)
            # A PATCH names only what changes; the rest keeps its value and is checked again.
            merged: dict[str, Any] = {
                "title": current.title,
                "description": current.description,
                "brand": current.brand,
                "size": current.size,
                "condition": current.condition,
                "category": current.category,
                "price_cents": current.price_cents,
                "quantity": current.quantity,
            }
            if "price" in body and "price_cents" not in body:
                merged.pop("price_cents")
            merged.update(body)
            listing = closet.update_listing(session, user, listing_id, closet.parse_listing(merged))
            return closet.listing_json(listing, closet.photos_of(session, listing_id))

    return JSONResponse(await run_in_threadpool(save))


async def delete_listing(request: Request) -> Response:
    user = await run_in_threadpool(require_user, request)
    await check_csrf(request)

    def delete() -> None:
        with ctx(request).db.session() as session:
            closet.delete_listing(session, photo_store(request), user, request.path_params["listing_id"])

    await run_in_threadpool(delete)
    return Response(status_code=204)


async def add_photo(request: Request) -> Response:
    """The raw image is the body (Content-Type image/jpeg, image/png or image/webp)."""
    user = await run_in_threadpool(require_user, request)
    await check_csrf(request)
    store = photo_store(request)
    body = await read_limited(request, store.max_bytes)
    prepared = await run_in_threadpool(store.prepare, body)
    listing_id: int = request.path_params["listing_id"]

    def save() -> dict[str, Any]:
        with ctx(request).db.session() as session:
            closet.add_photos(session, store, user, listing_id, [prepared])
            return closet.listing_json(
                closet.get_listing(session, listing_id), closet.photos_of(session, listing_id)
            )

    return JSONResponse(await run_in_threadpool(save), status_code=201)


def routes() -> list[BaseRoute]:
    return [
        Route("/api/shows", create_show, methods=["POST"]),
        Route("/api/shows/{show_id:int}", get_show, methods=["GET"]),
        Route("/api/shows/{show_id:int}/lineup", put_lineup, methods=["PUT"]),
        Route("/api/listings", list_listings, methods=["GET"]),
        Route("/api/listings", create_listing, methods=["POST"]),
        Route("/api/listings/{listing_id:int}", get_listing, methods=["GET"]),
        Route("/api/listings/{listing_id:int}", update_listing, methods=["PATCH"]),
        Route("/api/listings/{listing_id:int}", delete_listing, methods=["DELETE"]),
        Route("/api/listings/{listing_id:int}/photos", add_photo, methods=["POST"]),
    ]
