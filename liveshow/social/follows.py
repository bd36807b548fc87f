"""Follows: a viewer subscribes to a seller's shows."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from liveshow.accounts.models import User
from liveshow.accounts.service import get_user_by_name
from liveshow.errors import NotFound, ValidationFailed
from liveshow.social.models import Follow


def get_seller(session: Session, username: str) -> User:
    if len(username) > 32:
        raise NotFound("No such seller.")
    seller = get_user_by_name(session, username)
    if seller is None or not seller.is_active:
        raise NotFound("No such seller.")
    return seller


def set_follow(session: Session, user: User, seller: User, following: bool | None = None) -> tuple[bool, int]:
    """Follow, unfollow, or (``following`` None) toggle; returns the state and the seller's follower count."""
    assert user.id is not None and seller.id is not None
    if user.id == seller.id:
        raise ValidationFailed("You can't follow yourself.")
    existing = session.exec(
        select(Follow).where(Follow.follower_id == user.id, Follow.seller_id == seller.id)
    ).first()
    want = (existing is None) if following is None else following
    if want and existing is None:
        session.add(Follow(follower_id=user.id, seller_id=seller.id))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
    elif not want and existing is not None:
        session.delete(existing)
        session.commit()
    return want, follower_count(session, seller.id)


def follower_count(session: Session, seller_id: int) -> int:
    return int(session.exec(select(func.count()).where(Follow.seller_id == seller_id)).one())


def following_count(session: Session, user_id: int) -> int:
    return int(session.exec(select(func.count()).where(Follow.follower_id == user_id)).one())


def is_following(session: Session, user_id: int | None, seller_id: int) -> bool:
    if user_id is None:
        return False
    row = session.exec(
        select(Follow.id).where(Follow.follower_id == user_id, Follow.seller_id == seller_id)
    ).first()
    return row is not None


def follower_ids(session: Session, seller_id: int) -> list[int]:
    return list(session.exec(select(Follow.follower_id).where(Follow.seller_id == seller_id)))
