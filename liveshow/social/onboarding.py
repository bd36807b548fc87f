"""The first-sale path for a new seller: list 5 items, schedule a show, share it, go live, sell.

Progress is computed from real data (listings, shows, sales); only "shared" and "celebrated" leave no
other trace, so they are recorded as milestones.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from liveshow.closet.models import Listing
from liveshow.errors import Forbidden, NotFound
from liveshow.shows.models import Show
from liveshow.social.models import Milestone

LISTINGS_GOAL = 5


@dataclass(frozen=True)
class Step:
    key: str
    label: str
    done: bool
    href: str
    detail: str = ""
    show_id: int | None = None


def _count(session: Session, stmt: object) -> int:
    return int(session.exec(stmt).one())  # type: ignore[call-overload]


def has_milestone(session: Session, user_id: int, kind: str) -> bool:
    return (
        session.exec(select(Milestone.id).where(Milestone.user_id == user_id, Milestone.kind == kind)).first()
        is not None
    )


def record(session: Session, user_id: int, kind: str, ref_id: int | None = None) -> bool:
    """Record a milestone once; True if this call recorded it."""
    session.add(Milestone(user_id=user_id, kind=kind, ref_id=ref_id))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


def first_sale(session: Session, seller_id: int) -> Listing | None:
    """The seller's first sold listing (earliest updated), if any."""
    stmt = (
        select(Listing)
        .where(Listing.seller_id == seller_id, col(Listing.sold_count) > 0)
        .order_by(col(Listing.updated_at), col(Listing.id))
    )
    return session.exec(stmt).first()


def progress(session: Session, seller_id: int) -> list[Step]:
    listed = _count(session, select(func.count()).where(Listing.seller_id == seller_id))
    shows = list(session.exec(select(Show).where(Show.seller_id == seller_id).order_by(col(Show.created_at))))
    next_show = next((s for s in shows if s.state == "scheduled"), shows[-1] if shows else None)
    went_live = any(s.went_live_at is not None or s.state in ("live", "ended") for s in shows)
    sale = first_sale(session, seller_id)
    show_href = f"/studio/{next_show.id}" if next_show else "/shows/new"
    return [
        Step(
            "list",
            f"List {LISTINGS_GOAL} items",
            listed >= LISTINGS_GOAL,
            "/closet",
            f"{min(listed, LISTINGS_GOAL)} of {LISTINGS_GOAL}",
        ),
        Step("schedule", "Schedule a show", bool(shows), "/shows/new"),
        Step(
            "share",
            "Share your show",
            has_milestone(session, seller_id, "shared"),
            f"/shows/{next_show.id}" if next_show else "/shows/new",
            show_id=next_show.id if next_show else None,
        ),
        Step("live", "Go live", went_live, show_href),
        Step("sale", "Make your first sale", sale is not None, "/orders"),
    ]


def mark_shared(session: Session, user_id: int, show_id: int) -> bool:
    show = session.get(Show, show_id)
    if show is None:
        raise NotFound("No such show.")
    if show.seller_id != user_id:
        raise Forbidden("Only the show's seller can mark it shared.")
    return record(session, user_id, "shared", show_id)
