"""Show tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from liveshow.clock import utcnow

SHOW_STATES = ("scheduled", "live", "ended")


class Show(SQLModel, table=True):
    __tablename__ = "shows"

    id: int | None = Field(default=None, primary_key=True)
    seller_id: int = Field(foreign_key="users.id", index=True)
    title: str = Field(max_length=120)
    description: str = Field(default="", max_length=2000)
    starts_at: datetime = Field(default_factory=utcnow, index=True)
    cover_filename: str = Field(default="", max_length=80)
    state: str = Field(default="scheduled", max_length=12, index=True)
    visibility: str = Field(default="public", max_length=10)  # public | private
    stream_key: str = Field(max_length=64)
    claim_keyword: str = Field(default="claim", max_length=20)
    created_at: datetime = Field(default_factory=utcnow)
    went_live_at: datetime | None = None
    ended_at: datetime | None = None


class LineupItem(SQLModel, table=True):
    __tablename__ = "lineup_items"
    __table_args__ = (UniqueConstraint("show_id", "listing_id", name="uq_lineup_show_listing"),)

    id: int | None = Field(default=None, primary_key=True)
    show_id: int = Field(foreign_key="shows.id", index=True)
    listing_id: int = Field(foreign_key="listings.id", index=True)
    position: int = Field(default=0)
