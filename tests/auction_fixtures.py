"""Shared set-up for the auction tests: a seller with a live show and listings, viewers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import pytest

from liveshow.accounts.models import User
from liveshow.accounts.service import create_user
from liveshow.closet.models import Listing
from liveshow.db import Database
from liveshow.shows.models import LineupItem, Show


@dataclass
class World:
    seller: User
    viewers: list[User]
    show: Show
    listings: list[Listing] = field(default_factory=list)

    @property
    def show_id(self) -> int:
        assert self.show.id is not None
        return self.show.id


def make_world(
    db: Database, viewers: int = 3, quantities: tuple[int, ...] = (1, 3), live: bool = True
) -> World:
    with db.session() as s:
        seller = create_user(s, f"seller-{secrets.token_hex(3)}", "password123")
        people = [create_user(s, f"viewer{i}-{secrets.token_hex(3)}", "password123") for i in range(viewers)]
        show = Show(
            seller_id=seller.id,
            title="Closet clear-out",
            stream_key=secrets.token_hex(8),
            state="live" if live else "scheduled",
        )
        s.add(show)
        s.commit()
        s.refresh(show)
        listings = []
        for i, qty in enumerate(quantities):
            listing = Listing(
                seller_id=seller.id, title=f"Item {i}", size="M", price_cents=1500 + i * 100, quantity=qty
            )
            s.add(listing)
            s.commit()
            s.refresh(listing)
            s.add(LineupItem(show_id=show.id, listing_id=listing.id, position=i))
            listings.append(listing)
        s.commit()
    return World(seller, people, show, listings)


def key() -> str:
    return "k-" + secrets.token_hex(8)


class WriterClock:
    """The writers' and dispatchers' wall clock, moved by the test: an auction's deadline passes when the
    test says so, however slow the machine is (patch it in with ``install``)."""

    MODULES = ("liveshow.auction.writer", "liveshow.auction.local", "liveshow.auction.distributed")

    def __init__(self, start_ms: int) -> None:
        self.ms = start_ms

    def __call__(self) -> int:
        return self.ms

    def install(self, monkeypatch: pytest.MonkeyPatch) -> WriterClock:
        for module in self.MODULES:
            monkeypatch.setattr(f"{module}.wall_ms", self)
        return self
