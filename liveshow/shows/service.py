"""Shows: schedule one, keep its lineup (the seller's own listings, in order). Synchronous; callers
hold the session. Ownership is checked here so forms and the API refuse alike."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from liveshow.accounts.models import User
from liveshow.clock import utcnow
from liveshow.closet import fields
from liveshow.closet.models import Listing
from liveshow.closet.photos import PhotoStore, PreparedPhoto, thumb_name
from liveshow.closet.service import first_photos
from liveshow.errors import Conflict, Forbidden, NotFound, ValidationFailed
from liveshow.shows.models import LineupItem, Show

VISIBILITIES = ("public", "private")
MAX_LINEUP = 200
COVER_THUMB = 800


@dataclass(frozen=True)
class ShowInput:
    title: str
    description: str
    starts_at: datetime | None  # aware UTC; None: keep (edits) or now (new shows)
    visibility: str
    listing_ids: list[int] | None  # None: leave the lineup alone


@dataclass(frozen=True)
class LineupEntry:
    position: int
    listing: Listing
    thumb_url: str | None


def parse_show(raw: Mapping[str, Any], tz_offset_minutes: int = 0, partial: bool = False) -> ShowInput:
    now = utcnow()
    starts_raw = raw.get("starts_at")
    starts_at: datetime | None = None
    if starts_raw not in (None, ""):
        starts_at = fields.when(starts_raw, "Start time", tz_offset_minutes)
    elif not partial:
        starts_at = now
    # A little slack into the past covers "starting now" typed a minute late; a year ahead is plenty.
    if starts_at is not None and starts_raw not in (None, ""):
        if starts_at < now - timedelta(hours=1):
            raise ValidationFailed("Start time: that is in the past.")
        if starts_at > now + timedelta(days=366):
            raise ValidationFailed("Start time: at most a year ahead.")
    ids = raw.get("listing_ids")
    return ShowInput(
        title=fields.text(raw.get("title"), "Title", 120, required=True),
        description=fields.text(raw.get("description"), "Description", 2000, multiline=True),
        starts_at=starts_at,
        visibility=fields.choice(raw.get("visibility"), "Visibility", VISIBILITIES, default="public"),
        listing_ids=None if ids is None else fields.id_list(ids, "Lineup", MAX_LINEUP),
    )


def get_show(session: Session, show_id: int) -> Show:
    show = session.get(Show, show_id)
    if show is None:
        raise NotFound("No such show.")
    return show


def visible_show(session: Session, user: User | None, show_id: int) -> Show:
    """A private show is the seller's alone: for anyone else it does not exist."""
    show = get_show(session, show_id)
    if show.visibility == "private" and (user is None or user.id != show.seller_id):
        raise NotFound("No such show.")
    return show


def owned_show(session: Session, user: User, show_id: int) -> Show:
    show = get_show(session, show_id)
    if show.seller_id != user.id:
        raise Forbidden("That show belongs to another seller.")
    return show


def create_show(
    session: Session, store: PhotoStore, seller: User, data: ShowInput, cover: PreparedPhoto | None = None
) -> Show:
    assert seller.id is not None
    show = Show(
        seller_id=seller.id,
        title=data.title,
        description=data.description,
        starts_at=data.starts_at or utcnow(),
        visibility=data.visibility,
        stream_key=secrets.token_urlsafe(24),
    )
    stored = store.save(cover, prefix="c") if cover is not None else None
    try:
        if stored is not None:
            show.cover_filename = stored.filename
        session.add(show)
        session.flush()
        if data.listing_ids:
            _replace_lineup(session, seller, show, data.listing_ids)
        session.commit()
    except Exception:
        session.rollback()
        if stored is not None:
            store.discard([stored])
        raise
    session.refresh(show)
    return show


def update_show(
    session: Session,
    store: PhotoStore,
    user: User,
    show_id: int,
    data: ShowInput,
    cover: PreparedPhoto | None,
) -> Show:
    show = owned_show(session, user, show_id)
    if show.state == "ended":
        raise Conflict("The show has ended; it can no longer be changed.")
    old_cover = show.cover_filename
    stored = store.save(cover, prefix="c") if cover is not None else None
    try:
        show.title, show.description, show.visibility = data.title, data.description, data.visibility
        if show.state == "scheduled" and data.starts_at is not None:
            show.starts_at = data.starts_at
        if stored is not None:
            show.cover_filename = stored.filename
        if data.listing_ids is not None:
            _replace_lineup(session, user, show, data.listing_ids)
        session.add(show)
        session.commit()
    except Exception:
        session.rollback()
        if stored is not None:
            store.discard([stored])
        raise
    if stored is not None and old_cover:
        store.remove(old_cover, thumb_name(old_cover))
    session.refresh(show)
    return show


def delete_show(session: Session, store: PhotoStore, user: User, show_id: int) -> None:
    show = owned_show(session, user, show_id)
    if show.state != "scheduled":
        raise Conflict("Only a show that has not started can be deleted.")
    for item in _items(session, show_id):
        session.delete(item)
    session.flush()
    session.delete(show)
    session.commit()
    if show.cover_filename:
        store.remove(show.cover_filename, thumb_name(show.cover_filename))


def lineup(session: Session, show_id: int) -> list[LineupEntry]:
    rows = session.exec(
        select(LineupItem, Listing)
        .join(Listing, col(Listing.id) == LineupItem.listing_id)
        .where(LineupItem.show_id == show_id)
        .order_by(col(LineupItem.position), col(LineupItem.id))
    ).all()
    photos = first_photos(session, [listing.id for _, listing in rows if listing.id is not None])
    return [
        LineupEntry(
            position=item.position,
            listing=listing,
            thumb_url=f"/uploads/{photos[listing.id].thumb_filename}" if listing.id in photos else None,
        )
        for item, listing in rows
    ]


def set_lineup(session: Session, user: User, show_id: int, listing_ids: list[int]) -> None:
    show = owned_show(session, user, show_id)
    _replace_lineup(session, user, show, listing_ids)
    session.commit()


def add_to_lineup(session: Session, user: User, show_id: int, listing_ids: list[int]) -> None:
    show = owned_show(session, user, show_id)
    current = [i.listing_id for i in _items(session, show_id)]
    new = [i for i in listing_ids if i not in current]
    _replace_lineup(session, user, show, current + new)
    session.commit()


def remove_from_lineup(session: Session, user: User, show_id: int, listing_id: int) -> None:
    show = owned_show(session, user, show_id)
    current = [i.listing_id for i in _items(session, show_id)]
    if listing_id not in current:
        raise NotFound("That item is not in the lineup.")
    _replace_lineup(session, user, show, [i for i in current if i != listing_id])
    session.commit()


def move_in_lineup(session: Session, user: User, show_id: int, listing_id: int, offset: int) -> None:
    """Move one item up (-1) or down (+1); at either end it stays put."""
    show = owned_show(session, user, show_id)
    current = [i.listing_id for i in _items(session, show_id)]
    if listing_id not in current:
        raise NotFound("That item is not in the lineup.")
    at = current.index(listing_id)
    to = min(max(at + offset, 0), len(current) - 1)
    current.insert(to, current.pop(at))
    _replace_lineup(session, user, show, current)
    session.commit()


def _items(session: Session, show_id: int) -> list[LineupItem]:
    return list(
        session.exec(
            select(LineupItem)
            .where(LineupItem.show_id == show_id)
            .order_by(col(LineupItem.position), col(LineupItem.id))
        ).all()
    )


def _replace_lineup(session: Session, seller: User, show: Show, listing_ids: list[int]) -> None:
    """Make the lineup exactly these listings in this order; every one must be the seller's."""
    if len(listing_ids) > MAX_LINEUP:
        raise ValidationFailed(f"Lineup: at most {MAX_LINEUP} items.")
    if len(set(listing_ids)) != len(listing_ids):
        raise ValidationFailed("Lineup: an item appears twice.")
    if listing_ids:
        found = session.exec(select(Listing).where(col(Listing.id).in_(listing_ids))).all()
        owners = {listing.id: listing.seller_id for listing in found}
        missing = [i for i in listing_ids if i not in owners]
        if missing:
            raise ValidationFailed(f"Lineup: no listing {missing[0]}.")
        if any(owner != seller.id for owner in owners.values()):
            raise Forbidden("Lineup: only your own listings can go in your show.")
    assert show.id is not None
    existing = {item.listing_id: item for item in _items(session, show.id)}
    for listing_id, item in existing.items():
        if listing_id not in listing_ids:
            session.delete(item)
    session.flush()
    # Positions are rewritten 0..n-1 so the order is always dense and unambiguous.
    for position, listing_id in enumerate(listing_ids):
        item = existing.get(listing_id) or LineupItem(show_id=show.id, listing_id=listing_id)
        item.position = position
        session.add(item)
    session.flush()


def cover_url(show: Show, thumb: bool = True) -> str | None:
    if not show.cover_filename:
        return None
    return f"/uploads/{thumb_name(show.cover_filename) if thumb else show.cover_filename}"


def show_json(
    show: Show, seller: User, entries: list[LineupEntry], origin: str, owner: bool
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": show.id,
        "title": show.title,
        "description": show.description,
        "state": show.state,
        "visibility": show.visibility,
        "starts_at": show.starts_at.isoformat(),
        "seller": {"id": seller.id, "username": seller.username, "display_name": seller.display_name},
        "cover_url": cover_url(show, thumb=False),
        "claim_keyword": show.claim_keyword,
        "whep_url": f"{origin}/whep/{show.id}",
        "page_url": f"{origin}/shows/{show.id}",
        "lineup": [
            {
                "position": e.position,
                "listing_id": e.listing.id,
                "title": e.listing.title,
                "price_cents": e.listing.price_cents,
                "available": e.listing.available,
                "thumb_url": e.thumb_url,
            }
            for e in entries
        ],
    }
    if owner:
        data.update(
            stream_key=show.stream_key,
            whip_url=f"{origin}/whip/{show.id}",
            studio_url=f"{origin}/studio/{show.id}",
        )
    return data
