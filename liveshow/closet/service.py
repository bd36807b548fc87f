"""The closet: a seller's listings and their photos. Synchronous; callers hold the session.

Every change checks ownership here (not in the handlers) so forms and the API refuse alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from liveshow.accounts.models import User
from liveshow.clock import utcnow
from liveshow.closet import fields
from liveshow.closet.models import CATEGORIES, CONDITIONS, Listing, ListingPhoto
from liveshow.closet.photos import PhotoStore, PreparedPhoto, StoredPhoto
from liveshow.errors import Conflict, Forbidden, NotFound, ValidationFailed
from liveshow.shows.models import LineupItem, Show

MAX_QUANTITY = 999


@dataclass(frozen=True)
class ListingInput:
    title: str
    description: str
    brand: str
    size: str
    condition: str
    category: str
    price_cents: int
    quantity: int


def parse_listing(raw: Mapping[str, Any]) -> ListingInput:
    """Form fields (price as dollars text) or JSON (price_cents as an integer, or price as text)."""
    if raw.get("price_cents") not in (None, ""):
        price = fields.cents(raw.get("price_cents"))
    else:
        price = fields.price_text_to_cents(raw.get("price"))
    return ListingInput(
        title=fields.text(raw.get("title"), "Title", 120, required=True),
        description=fields.text(raw.get("description"), "Description", 4000, multiline=True),
        brand=fields.text(raw.get("brand"), "Brand", 60),
        size=fields.text(raw.get("size"), "Size", 20),
        condition=fields.choice(raw.get("condition"), "Condition", CONDITIONS, default="good"),
        category=fields.choice(raw.get("category"), "Category", CATEGORIES, default="other"),
        price_cents=price,
        quantity=fields.integer(raw.get("quantity", 1) or 1, "Quantity", 1, MAX_QUANTITY),
    )


def get_listing(session: Session, listing_id: int) -> Listing:
    listing = session.get(Listing, listing_id)
    if listing is None:
        raise NotFound("No such listing.")
    return listing


def owned_listing(session: Session, user: User, listing_id: int) -> Listing:
    listing = get_listing(session, listing_id)
    if listing.seller_id != user.id:
        raise Forbidden("That listing belongs to another seller.")
    return listing


def photos_of(session: Session, listing_id: int) -> list[ListingPhoto]:
    return list(
        session.exec(
            select(ListingPhoto)
            .where(ListingPhoto.listing_id == listing_id)
            .order_by(col(ListingPhoto.position), col(ListingPhoto.id))
        ).all()
    )


def first_photos(session: Session, listing_ids: list[int]) -> dict[int, ListingPhoto]:
    """The cover photo of each listing, in one query."""
    if not listing_ids:
        return {}
    rows = session.exec(
        select(ListingPhoto)
        .where(col(ListingPhoto.listing_id).in_(listing_ids))
        .order_by(col(ListingPhoto.listing_id), col(ListingPhoto.position), col(ListingPhoto.id))
    ).all()
    first: dict[int, ListingPhoto] = {}
    for photo in rows:
        first.setdefault(photo.listing_id, photo)
    return first


def listings_of(session: Session, seller_id: int, include_sold: bool = True) -> list[Listing]:
    query = select(Listing).where(Listing.seller_id == seller_id)
    if not include_sold:
        query = query.where(Listing.status == "available")
    return list(session.exec(query.order_by(col(Listing.status), col(Listing.id).desc())).all())


def create_listing(
    session: Session, store: PhotoStore, seller: User, data: ListingInput, photos: list[PreparedPhoto]
) -> Listing:
    """Photos are already decoded and checked; files are written last and removed if the commit fails."""
    assert seller.id is not None
    if len(photos) > store.max_per_listing:
        raise ValidationFailed(f"At most {store.max_per_listing} photos per listing.")
    listing = Listing(seller_id=seller.id, **asdict(data))
    stored = store.save_all(photos)
    try:
        session.add(listing)
        session.flush()
        assert listing.id is not None
        _add_photo_rows(session, listing.id, stored, start=0)
        session.commit()
    except Exception:
        session.rollback()
        store.discard(stored)
        raise
    session.refresh(listing)
    return listing


def update_listing(session: Session, user: User, listing_id: int, data: ListingInput) -> Listing:
    listing = owned_listing(session, user, listing_id)
    if data.quantity < listing.sold_count:
        raise ValidationFailed(f"Quantity: {listing.sold_count} already sold, so at least that many.")
    for key, value in asdict(data).items():
        setattr(listing, key, value)
    listing.status = "sold" if listing.sold_count >= listing.quantity else listing.status
    listing.updated_at = utcnow()
    session.add(listing)
    session.commit()
    session.refresh(listing)
    return listing


def edit_listing(
    session: Session,
    store: PhotoStore,
    user: User,
    listing_id: int,
    data: ListingInput,
    remove_ids: list[int],
    new_photos: list[PreparedPhoto],
) -> Listing:
    """The edit form in one transaction: every check first, then fields, removals and additions."""
    listing = owned_listing(session, user, listing_id)
    existing = photos_of(session, listing_id)
    doomed = [p for p in existing if p.id in set(remove_ids)]
    if len(doomed) != len(set(remove_ids)):
        raise NotFound("No such photo on this listing.")
    if len(existing) - len(doomed) + len(new_photos) > store.max_per_listing:
        raise ValidationFailed(
            f"At most {store.max_per_listing} photos per listing; this one has {len(existing)}."
        )
    if data.quantity < listing.sold_count:
        raise ValidationFailed(f"Quantity: {listing.sold_count} already sold, so at least that many.")
    for key, value in asdict(data).items():
        setattr(listing, key, value)
    if listing.sold_count >= listing.quantity:
        listing.status = "sold"
    listing.updated_at = utcnow()
    session.add(listing)
    for photo in doomed:
        session.delete(photo)
    start = max((p.position for p in existing), default=-1) + 1
    stored = store.save_all(new_photos)
    try:
        _add_photo_rows(session, listing_id, stored, start=start)
        session.commit()
    except Exception:
        session.rollback()
        store.discard(stored)
        raise
    for photo in doomed:
        store.remove(photo.filename, photo.thumb_filename)
    session.refresh(listing)
    return listing


def add_photos(
    session: Session, store: PhotoStore, user: User, listing_id: int, photos: list[PreparedPhoto]
) -> list[ListingPhoto]:
    listing = owned_listing(session, user, listing_id)
    assert listing.id is not None
    existing = photos_of(session, listing.id)
    if len(existing) + len(photos) > store.max_per_listing:
        raise ValidationFailed(
            f"At most {store.max_per_listing} photos per listing; this one has {len(existing)}."
        )
    start = max((p.position for p in existing), default=-1) + 1
    stored = store.save_all(photos)
    try:
        rows = _add_photo_rows(session, listing.id, stored, start=start)
        session.commit()
    except Exception:
        session.rollback()
        store.discard(stored)
        raise
    return rows


def remove_photos(
    session: Session, store: PhotoStore, user: User, listing_id: int, photo_ids: list[int]
) -> None:
    listing = owned_listing(session, user, listing_id)
    doomed = [p for p in photos_of(session, listing_id) if p.id in set(photo_ids)]
    if len(doomed) != len(set(photo_ids)):
        raise NotFound("No such photo on this listing.")
    for photo in doomed:
        session.delete(photo)
    listing.updated_at = utcnow()
    session.add(listing)
    session.commit()
    for photo in doomed:
        store.remove(photo.filename, photo.thumb_filename)


def set_status(session: Session, user: User, listing_id: int, sold: bool) -> Listing:
    listing = owned_listing(session, user, listing_id)
    if not sold and listing.sold_count >= listing.quantity:
        raise Conflict("Every unit has been sold; raise the quantity to list it again.")
    listing.status = "sold" if sold else "available"
    listing.updated_at = utcnow()
    session.add(listing)
    session.commit()
    session.refresh(listing)
    return listing


def delete_listing(session: Session, store: PhotoStore, user: User, listing_id: int) -> None:
    listing = owned_listing(session, user, listing_id)
    if listing.sold_count > 0:
        raise Conflict("This item has sales; mark it sold instead so its orders keep their record.")
    live = session.exec(
        select(func.count())
        .select_from(LineupItem)
        .join(Show, col(Show.id) == LineupItem.show_id)
        .where(LineupItem.listing_id == listing_id, Show.state == "live")
    ).one()
    if live:
        raise Conflict("This item is in a show that is live now; remove it after the show.")
    photos = photos_of(session, listing_id)
    for item in session.exec(select(LineupItem).where(LineupItem.listing_id == listing_id)).all():
        session.delete(item)
    for photo in photos:
        session.delete(photo)
    try:
        # No ORM relationships: flush the children first so the foreign keys never dangle.
        session.flush()
        session.delete(listing)
        session.commit()
    except IntegrityError as exc:
        # Another feature's rows (orders, lots) still point at it: keep it.
        session.rollback()
        raise Conflict("This item is referenced by orders or lots; mark it sold instead.") from exc
    for photo in photos:
        store.remove(photo.filename, photo.thumb_filename)


def listing_json(listing: Listing, photos: list[ListingPhoto]) -> dict[str, Any]:
    return {
        "id": listing.id,
        "seller_id": listing.seller_id,
        "title": listing.title,
        "description": listing.description,
        "brand": listing.brand,
        "size": listing.size,
        "condition": listing.condition,
        "category": listing.category,
        "price_cents": listing.price_cents,
        "quantity": listing.quantity,
        "available": listing.available,
        "status": listing.status,
        "photos": [
            {"id": p.id, "url": f"/uploads/{p.filename}", "thumb_url": f"/uploads/{p.thumb_filename}"}
            for p in photos
        ],
        "page_url": f"/listings/{listing.id}",
    }


def _add_photo_rows(
    session: Session, listing_id: int, stored: list[StoredPhoto], start: int
) -> list[ListingPhoto]:
    rows = [
        ListingPhoto(
            listing_id=listing_id,
            position=start + i,
            filename=s.filename,
            thumb_filename=s.thumb_filename,
            content_type=s.content_type,
        )
        for i, s in enumerate(stored)
    ]
    for row in rows:
        session.add(row)
    return rows
