"""Auction tables: the writer's fence per show, lots with their state, accepted bids and claims, and the
decisions (one row per answered command: idempotency key, (epoch, seq), the answer)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Text, UniqueConstraint
from sqlmodel import Column, Field, SQLModel

from liveshow.clock import utcnow


class AuctionWriter(SQLModel, table=True):
    """Who may write for a show: a decision commits only while its epoch is the row's epoch."""

    __tablename__ = "auction_writers"

    show_id: int = Field(foreign_key="shows.id", primary_key=True)
    epoch: int = Field(default=0)
    seq: int = Field(default=0)
    # Position in the show's command stream (Redis) up to which every command has been decided.
    stream_pos: str = Field(default="0-0", max_length=40)


class AuctionLot(SQLModel, table=True):
    __tablename__ = "auction_lots"
    __table_args__ = (UniqueConstraint("show_id", "lot_no", name="uq_auction_lots_show_lot"),)

    id: int | None = Field(default=None, primary_key=True)
    show_id: int = Field(foreign_key="shows.id", index=True)
    lot_no: int
    listing_id: int = Field(foreign_key="listings.id", index=True)
    kind: str = Field(max_length=10)  # claim | auction
    state: str = Field(max_length=10, index=True)  # open | closed | cancelled
    title: str = Field(default="", max_length=120)
    size: str = Field(default="", max_length=20)
    photo_url: str = Field(default="", max_length=200)
    state_json: str = Field(sa_column=Column(Text, nullable=False))
    opened_at: datetime = Field(default_factory=utcnow)
    closed_at: datetime | None = None


class AuctionBid(SQLModel, table=True):
    __tablename__ = "auction_bids"

    id: int | None = Field(default=None, primary_key=True)
    show_id: int = Field(foreign_key="shows.id", index=True)
    lot_id: int = Field(foreign_key="auction_lots.id", index=True)
    bidder_id: int = Field(foreign_key="users.id")
    max_cents: int
    at_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    epoch: int
    seq: int


class AuctionClaim(SQLModel, table=True):
    __tablename__ = "auction_claims"

    id: int | None = Field(default=None, primary_key=True)
    show_id: int = Field(foreign_key="shows.id", index=True)
    lot_id: int = Field(foreign_key="auction_lots.id", index=True)
    buyer_id: int = Field(foreign_key="users.id")
    quantity: int
    at_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    epoch: int
    seq: int


class AuctionDecision(SQLModel, table=True):
    __tablename__ = "auction_decisions"
    __table_args__ = (
        UniqueConstraint("show_id", "seq", name="uq_auction_decisions_show_seq"),
        UniqueConstraint("show_id", "user_id", "idem_key", name="uq_auction_decisions_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    show_id: int = Field(foreign_key="shows.id", index=True)
    epoch: int
    seq: int
    kind: str = Field(max_length=12)
    user_id: int | None = Field(default=None, foreign_key="users.id")
    idem_key: str | None = Field(default=None, max_length=80)
    fingerprint: str = Field(default="", max_length=32)
    accepted: bool
    reply: str = Field(sa_column=Column(Text, nullable=False))  # JSON: {"ok": ...} or {"error": ...}
    at_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
