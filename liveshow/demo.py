"""Demo data for a newcomer: a seller with a dozen listings (generated photos), a scheduled show with a
lineup and a cover, and a buyer. Goes through the same services as the pages, so it is valid data."""

from __future__ import annotations

from datetime import timedelta

from liveshow.accounts.service import create_user, get_user_by_name
from liveshow.clock import utcnow
from liveshow.closet import service as closet
from liveshow.closet.artwork import cover_image, product_image
from liveshow.closet.photos import PhotoStore, prepare_image
from liveshow.db import Database
from liveshow.settings import Settings
from liveshow.shows import service as shows

SELLER = "demo-seller"
BUYER = "demo-buyer"

# title, brand, size, category, condition, price (cents), quantity, colour, stripes, description
ITEMS: list[
    tuple[str, str, str, str, str, int, int, tuple[int, int, int], tuple[int, int, int] | None, str]
] = [
    (
        "Levi's 501 high-rise jeans, medium wash",
        "Levi's",
        "W28 L30",
        "bottoms",
        "like new",
        4800,
        1,
        (62, 94, 140),
        None,
        'Classic button fly, 100% cotton. Waist 14" flat, inseam 30". No fading at the knees.',
    ),
    (
        "Patagonia Better Sweater fleece jacket",
        "Patagonia",
        "M",
        "outerwear",
        "good",
        6500,
        1,
        (64, 84, 72),
        None,
        "Full zip, heather forest green. Light pilling under the arms, otherwise great.",
    ),
    (
        "Breton striped cotton tee",
        "Saint James",
        "S",
        "tops",
        "new with tags",
        5200,
        2,
        (238, 236, 228),
        (32, 48, 92),
        "The original marinière in heavy cotton jersey. Two available in size S.",
    ),
    (
        "Reformation silk midi slip dress",
        "Reformation",
        "4",
        "dresses",
        "like new",
        9800,
        1,
        (176, 44, 72),
        None,
        "Cherry red silk charmeuse, bias cut, adjustable straps. Worn once to a wedding.",
    ),
    (
        "Nike Air Force 1 '07 sneakers",
        "Nike",
        "US 9",
        "shoes",
        "good",
        5500,
        1,
        (236, 236, 236),
        None,
        "Triple white, cleaned and re-laced. Light creasing on the toe box.",
    ),
    (
        "Coach Tabby leather shoulder bag",
        "Coach",
        "One size",
        "bags",
        "like new",
        18500,
        1,
        (140, 86, 56),
        None,
        "Saddle brown pebbled leather, signature hardware, dust bag included.",
    ),
    (
        "Wool felt fedora hat",
        "Brixton",
        "M",
        "accessories",
        "good",
        3900,
        1,
        (96, 76, 62),
        None,
        "Chocolate wool felt with a grosgrain band. Holds its shape well.",
    ),
    (
        "Madewell oversized denim jacket",
        "Madewell",
        "L",
        "outerwear",
        "good",
        7200,
        1,
        (88, 118, 160),
        None,
        "Boxy fit, light wash, chest pockets. Small mark on the left cuff (see photos).",
    ),
    (
        "Everlane organic crew tee, 3 colours",
        "Everlane",
        "M",
        "tops",
        "new with tags",
        1800,
        3,
        (198, 120, 92),
        None,
        "Soft organic cotton, straight fit. Terracotta, three in stock.",
    ),
    (
        "Free People floral maxi dress",
        "Free People",
        "S",
        "dresses",
        "good",
        6800,
        1,
        (92, 70, 140),
        None,
        "Flowy violet print, smocked back, tiered skirt. Great for summer.",
    ),
    (
        "Dr. Martens 1460 leather boots",
        "Dr. Martens",
        "UK 7",
        "shoes",
        "fair",
        6000,
        1,
        (40, 34, 32),
        None,
        "Black smooth leather, broken in and comfortable. Scuffs on the toes, soles are solid.",
    ),
    (
        "Carhartt WIP double-knee work pants",
        "Carhartt WIP",
        "W32",
        "bottoms",
        "like new",
        7500,
        1,
        (150, 112, 64),
        None,
        "Hamilton brown canvas, rigid and barely worn.",
    ),
    (
        "Longchamp Le Pliage tote, navy",
        "Longchamp",
        "Large",
        "bags",
        "good",
        8900,
        1,
        (36, 46, 86),
        None,
        "Nylon with leather trim. Corners show light wear, zip works perfectly.",
    ),
]
LINEUP = [0, 2, 3, 5, 7, 4]


def load_demo(db: Database, settings: Settings, password: str) -> str | None:
    """Create the demo accounts, closet and show; returns the password, or None if already loaded."""
    store = PhotoStore(settings.uploads_dir, settings.max_photo_bytes, settings.max_photos_per_listing)
    with db.session() as session:
        if get_user_by_name(session, SELLER) is not None:
            return None
        seller = create_user(session, SELLER, password, display_name="Maya's Closet")
        seller.bio = "Vintage denim, good basics and the odd designer find. Live every Thursday at 7pm."
        session.add(seller)
        session.commit()
        if get_user_by_name(session, BUYER) is None:
            create_user(session, BUYER, password, display_name="Sam (demo buyer)")
        listing_ids: list[int] = []
        shots = []
        for index, item in enumerate(ITEMS):
            title, brand, size, category, condition, price, quantity, colour, stripes, description = item
            image = product_image(category, colour, seed=index, stripes=stripes)
            shots.append(image)
            # A second, closer shot: the same garment cropped, like a detail photo.
            detail = image.crop((160, 160, 640, 640)).resize((800, 800))
            data = closet.ListingInput(
                title=title,
                description=description,
                brand=brand,
                size=size,
                condition=condition,
                category=category,
                price_cents=price,
                quantity=quantity,
            )
            listing = closet.create_listing(
                session, store, seller, data, [prepare_image(image), prepare_image(detail)]
            )
            assert listing.id is not None
            listing_ids.append(listing.id)
        starts = (utcnow() + timedelta(days=2)).replace(hour=19, minute=0, second=0, microsecond=0)
        title = "Thursday Denim & Designer Drop"
        cover = cover_image(title, f"{len(LINEUP)} items · claim or bid live", [shots[i] for i in LINEUP])
        show = shows.create_show(
            session,
            store,
            seller,
            shows.ShowInput(
                title=title,
                description="Vintage Levi's, a Coach Tabby, Breton tees and more. Type 'claim' to buy "
                "fixed-price items; auctions run 30 seconds.",
                starts_at=starts,
                visibility="public",
                listing_ids=[listing_ids[i] for i in LINEUP],
            ),
            cover=prepare_image(cover, thumb_side=shows.COVER_THUMB),
        )
        assert show.id is not None
    return password
