"""HTTP for offers: the seller sends them to likers, a liker accepts one into an order."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.closet.models import Listing
from liveshow.social import likes, offers
from liveshow.social.http import path_int, read_json, req_int
from liveshow.web.auth import check_csrf, ctx, current_user, require_user, require_user_async
from liveshow.web.rendering import format_cents, render


async def send(request: Request) -> Response:
    await check_csrf(request)
    seller = await require_user_async(request)
    listing_id = path_int(request, "listing_id")
    data = await read_json(request)
    price = req_int(data, "price_cents", 1, 100_000_000)
    minutes = req_int(data, "minutes", offers.MIN_MINUTES, offers.MAX_MINUTES)
    to = data.get("to")
    if to is not None and not isinstance(to, list):
        from liveshow.errors import ValidationFailed

        raise ValidationFailed("to must be a list of user ids.")

    def run() -> tuple[list[dict[str, object]], list[int], str]:
        with ctx(request).db.session() as session:
            made = offers.send_offers(session, seller, listing_id, price, minutes, to)
            listing = session.get(Listing, listing_id)
            assert listing is not None
            return [offers.as_json(o) for o in made], [o.buyer_id for o in made], listing.title

    made, buyers, title = await run_in_threadpool(run)
    social = ctx(request).social
    assert social is not None
    text = f"{seller.display_name or seller.username} offers you {title} for {format_cents(price)}"
    await social.notifier.notify(buyers, "offer", text, "/offers")
    return JSONResponse({"offers": made}, status_code=201)


async def accept(request: Request) -> Response:
    await check_csrf(request)
    buyer = await require_user_async(request)
    offer_id = path_int(request, "offer_id")

    def run() -> dict[str, object]:
        with ctx(request).db.session() as session:
            return offers.as_json(offers.accept(session, buyer, offer_id))

    return JSONResponse(await run_in_threadpool(run))


def mine(request: Request) -> Response:
    buyer = require_user(request)
    assert buyer.id is not None
    with ctx(request).db.session() as session:
        return JSONResponse({"offers": [offers.as_json(o) for o in offers.received(session, buyer.id)]})


def listing_offers(request: Request) -> Response:
    seller = require_user(request)
    listing_id = path_int(request, "listing_id")
    with ctx(request).db.session() as session:
        rows = offers.for_listing(session, seller, listing_id)
    return JSONResponse({"offers": [offers.as_json(o) for o in rows]})


def offers_page(request: Request) -> Response:
    """A buyer's open offers (with Accept) and, for a seller, each listing's likers and an offer form."""
    user = current_user(request)
    if user is None or user.id is None:
        return RedirectResponse("/signin?next=/offers", status_code=303)
    from sqlmodel import col, select

    with ctx(request).db.session() as session:
        open_offers = offers.received(session, user.id)
        titles = {
            x.id: x
            for x in session.exec(
                select(Listing).where(col(Listing.id).in_([o.listing_id for o in open_offers]))
            )
        }
        mine_listings = list(
            session.exec(
                select(Listing)
                .where(Listing.seller_id == user.id, Listing.status == "available")
                .order_by(col(Listing.created_at).desc())
                .limit(100)
            )
        )
        liked = [(x, likes.likers(session, user, x.id or 0)) for x in mine_listings]
    return render(
        request,
        "offers.html",
        open_offers=[(o, titles.get(o.listing_id)) for o in open_offers],
        liked=[(x, people) for x, people in liked if people],
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/offers", offers_page),
        Route("/api/offers", mine),
        Route("/api/offers/{offer_id}/accept", accept, methods=["POST"]),
        Route("/api/listings/{listing_id}/offers", send, methods=["POST"]),
        Route("/api/listings/{listing_id}/offers", listing_offers, methods=["GET"]),
    ]
