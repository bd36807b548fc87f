"""HTTP for the first-sale path: progress page, "I shared it", and the sale share card."""

from __future__ import annotations

from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.closet.models import Listing, ListingPhoto
from liveshow.errors import Forbidden, NotFound
from liveshow.social import onboarding, sharecard
from liveshow.social.http import path_int
from liveshow.web.auth import check_csrf, ctx, current_user, require_user, require_user_async
from liveshow.web.rendering import format_cents, render


def start_page(request: Request) -> Response:
    user = current_user(request)
    if user is None or user.id is None:
        return RedirectResponse("/signin?next=/sell/start", status_code=303)
    with ctx(request).db.session() as session:
        steps = onboarding.progress(session, user.id)
        sale = onboarding.first_sale(session, user.id)
    # The celebration shows until it has been seen once (its own session: a refused insert rolls back).
    with ctx(request).db.session() as session:
        celebrate = sale is not None and onboarding.record(session, user.id, "celebrated", sale.id)
    done = sum(1 for s in steps if s.done)
    return render(
        request,
        "first_sale.html",
        steps=steps,
        done=done,
        percent=round(100 * done / len(steps)),
        sale=sale,
        celebrate=celebrate,
    )


def progress_api(request: Request) -> Response:
    user = require_user(request)
    assert user.id is not None
    with ctx(request).db.session() as session:
        steps = onboarding.progress(session, user.id)
    return JSONResponse(
        {
            "steps": [{"key": s.key, "label": s.label, "done": s.done, "detail": s.detail} for s in steps],
            "done": sum(1 for s in steps if s.done),
            "total": len(steps),
        }
    )


async def shared(request: Request) -> Response:
    await check_csrf(request)
    user = await require_user_async(request)
    assert user.id is not None
    show_id, user_id = path_int(request, "show_id"), user.id

    def run() -> bool:
        with ctx(request).db.session() as session:
            return onboarding.mark_shared(session, user_id, show_id)

    return JSONResponse({"recorded": await run_in_threadpool(run)})


def share_card(request: Request) -> Response:
    """The PNG for a sold listing, made for (and only for) its seller."""
    user = require_user(request)
    listing_id = path_int(request, "listing_id")
    context = ctx(request)
    with context.db.session() as session:
        listing = session.get(Listing, listing_id)
        if listing is None:
            raise NotFound("No such listing.")
        if listing.seller_id != user.id:
            raise Forbidden("Only the seller can make a share card for this sale.")
        if listing.sold_count <= 0:
            raise NotFound("This listing has not sold yet.")
        first = onboarding.first_sale(session, listing.seller_id)
        photo = session.exec(
            select(ListingPhoto)
            .where(ListingPhoto.listing_id == listing_id)
            .order_by(col(ListingPhoto.position))
        ).first()
    path = context.settings.uploads_dir / photo.filename if photo else None
    png = sharecard.sale_card(
        listing.title,
        format_cents(listing.price_cents),
        user.username,
        path,
        first=first is not None and first.id == listing.id,
    )
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


def routes() -> list[BaseRoute]:
    return [
        Route("/sell/start", start_page),
        Route("/api/sell/progress", progress_api),
        Route("/api/shows/{show_id}/shared", shared, methods=["POST"]),
        Route("/api/listings/{listing_id}/share-card.png", share_card),
    ]
