"""Giveaways in a live show: viewers present in the room enter with one tap; a fair, checkable draw.

Fairness is commit-reveal: when the giveaway opens, the show log gets ``sha256(seed)`` (the seed stays
secret, so nobody, the host included, can pick entrants to steer the result); at the draw the log gets
the seed and the sorted entrant ids, and the winner is ``entrants[H(seed:ids) mod n]`` - anyone can
recompute it from the archived events with ``pick_winner``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from liveshow.accounts.models import User
from liveshow.clock import utcnow
from liveshow.closet.models import Listing
from liveshow.errors import Conflict, Forbidden, NotFound, ValidationFailed
from liveshow.shows.models import Show
from liveshow.social.models import Giveaway, GiveawayEntry
from liveshow.social.orders_port import create_order

log = logging.getLogger(__name__)
ALGORITHM = "winner = entrants[int(sha256(seed + ':' + ','.join(entrants)), 16) % len(entrants)]"


class AlreadyEntered(Conflict):
    code = "already_entered"


def seed_hash(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def pick_winner(seed: str, entrants: list[int]) -> int:
    """The draw, as anyone can redo it: entrants sorted ascending, seed as published."""
    if not entrants:
        raise ValueError("no entrants")
    ordered = sorted(entrants)
    digest = hashlib.sha256(f"{seed}:{','.join(str(i) for i in ordered)}".encode()).hexdigest()
    return ordered[int(digest, 16) % len(ordered)]


def _host_show(session: Session, host: User, show_id: int) -> Show:
    show = session.get(Show, show_id)
    if show is None:
        raise NotFound("No such show.")
    if show.seller_id != host.id:
        raise Forbidden("Only the show's host runs giveaways.")
    if show.state != "live":
        raise Conflict("Giveaways run while the show is live.")
    return show


def start(session: Session, host: User, show_id: int, listing_id: int) -> Giveaway:
    _host_show(session, host, show_id)
    listing = session.get(Listing, listing_id)
    if listing is None or listing.seller_id != host.id:
        raise ValidationFailed("Give away one of your own listings.")
    if listing.available <= 0:
        raise Conflict("That listing has no unit left to give away.")
    if current(session, show_id) is not None:
        raise Conflict("A giveaway is already open in this show; draw it first.")
    giveaway = Giveaway(show_id=show_id, listing_id=listing_id, seed=secrets.token_hex(32))
    session.add(giveaway)
    session.commit()
    session.refresh(giveaway)
    return giveaway


def current(session: Session, show_id: int) -> Giveaway | None:
    return session.exec(select(Giveaway).where(Giveaway.show_id == show_id, Giveaway.state == "open")).first()


def enter(session: Session, user: User, show_id: int) -> tuple[Giveaway, int]:
    """One entry per user in the show's open giveaway. Called from the room socket: being there is
    what makes the user present; the host cannot enter their own giveaway."""
    assert user.id is not None
    giveaway = current(session, show_id)
    if giveaway is None:
        raise Conflict("No giveaway is open right now.")
    show = session.get(Show, show_id)
    if show is None or show.seller_id == user.id:
        raise Forbidden("The host can't enter their own giveaway.")
    assert giveaway.id is not None
    session.add(GiveawayEntry(giveaway_id=giveaway.id, user_id=user.id))
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise AlreadyEntered("You're already in this giveaway.") from exc
    return giveaway, entry_count(session, giveaway.id)


def entry_count(session: Session, giveaway_id: int) -> int:
    return len(list(session.exec(select(GiveawayEntry.id).where(GiveawayEntry.giveaway_id == giveaway_id))))


def draw(
    session: Session,
    host: User,
    giveaway_id: int,
    present: set[int] | None = None,
    now: datetime | None = None,
) -> tuple[Giveaway, list[int]]:
    """Draw the winner. ``present``, when the room can tell, drops entrants who have left the room."""
    giveaway = session.get(Giveaway, giveaway_id)
    if giveaway is None:
        raise NotFound("No such giveaway.")
    _host_show(session, host, giveaway.show_id)
    if giveaway.state != "open":
        raise Conflict("This giveaway was already drawn.")
    entrants = sorted(
        session.exec(select(GiveawayEntry.user_id).where(GiveawayEntry.giveaway_id == giveaway_id))
    )
    if present is not None:
        entrants = [u for u in entrants if u in present]
    if not entrants:
        raise Conflict("Nobody has entered yet.")
    giveaway.winner_id = pick_winner(giveaway.seed, entrants)
    giveaway.state, giveaway.drawn_at = "drawn", now or utcnow()
    session.add(giveaway)
    session.commit()
    # The prize is an order at zero price, through the same order service as every win.
    try:
        order = create_order(
            session, giveaway.winner_id, giveaway.listing_id, 0, "giveaway", show_id=giveaway.show_id
        )
        giveaway.order_id = order.id
        session.add(giveaway)
        session.commit()
    except Exception as exc:
        session.rollback()
        log.warning("giveaway %s drawn but its order was refused: %s", giveaway_id, exc)
    session.refresh(giveaway)
    return giveaway, entrants


def history(session: Session, show_id: int) -> list[Giveaway]:
    return list(session.exec(select(Giveaway).where(Giveaway.show_id == show_id).order_by(col(Giveaway.id))))
