"""Listing likes: a viewer's bookmark that tells the seller who cares about an item."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from liveshow.accounts.models import User
from liveshow.closet.models import Listing
from liveshow.errors import Forbidden, NotFound, ValidationFailed
from liveshow.social.models import Like


def get_listing(session: Session, listing_id: int) -> Listing:
    listing = session.get(Listing, listing_id)
    if listing is None:
        raise NotFound("No such listing.")
    return listing


def set_like(session: Session, user: User, listing_id: int, liked: bool | None = None) -> tuple[bool, int]:
    """Like, unlike, or (``liked`` None) toggle; returns the new state and the listing's like count."""
    assert user.id is not None
    listing = get_listing(session, listing_id)
    if listing.seller_id == user.id:
        raise ValidationFailed("You can't like your own listing.")
    existing = session.exec(
        select(Like).where(Like.user_id == user.id, Like.listing_id == listing_id)
    ).first()
    want = (existing is None) if liked is None else liked
    if want and existing is None:
        session.add(Like(user_id=user.id, listing_id=listing_id))
        try:
            session.commit()
        except IntegrityError:
            # A double tap raced us: the like is there, which is what was asked.
            session.rollback()
    elif not want and existing is not None:
        session.delete(existing)
        session.commit()
    return want, like_count(session, listing_id)


def like_count(session: Session, listing_id: int) -> int:
    return int(session.exec(select(func.count()).where(Like.listing_id == listing_id)).one())


def has_liked(session: Session, user_id: int | None, listing_id: int) -> bool:
    if user_id is None:
        return False
    row = session.exec(select(Like.id).where(Like.user_id == user_id, Like.listing_id == listing_id)).first()
    return row is not None


def liker_ids(session: Session, listing_id: int) -> list[int]:
    return list(session.exec(select(Like.user_id).where(Like.listing_id == listing_id)))


def is_liker(session: Session, user_id: int, listing_id: int) -> bool:
    return has_liked(session, user_id, listing_id)


def likers(session: Session, seller: User, listing_id: int, limit: int = 500) -> list[User]:
    """Who liked a listing: the listing's seller only (likes are private to buyer and seller)."""
    listing = get_listing(session, listing_id)
    if listing.seller_id != seller.id:
        raise Forbidden("Only the listing's seller sees who liked it.")
    rows = session.exec(
        select(User)
        .join(Like, col(Like.user_id) == col(User.id))
        .where(Like.listing_id == listing_id)
        .order_by(col(Like.created_at).desc())
        .limit(limit)
    )
    return list(rows)


def liked_listings(session: Session, user_id: int, limit: int = 200) -> list[Listing]:
    rows = session.exec(
        select(Listing)
        .join(Like, col(Like.listing_id) == col(Listing.id))
        .where(Like.user_id == user_id)
        .order_by(col(Like.created_at).desc())
        .limit(limit)
    )
    return list(rows)
