"""Closet tables. Money is integer cents."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from liveshow.clock import utcnow

CONDITIONS = ("new with tags", "like new", "good", "fair")
CATEGORIES = ("tops", "bottoms", "dresses", "outerwear", "shoes", "bags", "accessories", "other")


class Listing(SQLModel, table=True):
    __tablename__ = "listings"

    id: int | None = Field(default=None, primary_key=True)
    seller_id: int = Field(foreign_key="users.id", index=True)
    title: str = Field(max_length=120)
    description: str = Field(default="", max_length=4000)
    brand: str = Field(default="", max_length=60, index=True)
    size: str = Field(default="", max_length=20, index=True)
    condition: str = Field(default="good", max_length=20)
    category: str = Field(default="other", max_length=20, index=True)
    price_cents: int
    quantity: int = Field(default=1)
    # Units sold so far; available = quantity - sold_count. Orders are the source of truth.
    sold_count: int = Field(default=0)
    status: str = Field(default="available", max_length=12, index=True)  # available | sold
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def available(self) -> int:
        return max(0, self.quantity - self.sold_count)


class ListingPhoto(SQLModel, table=True):
    __tablename__ = "listing_photos"

    id: int | None = Field(default=None, primary_key=True)
    listing_id: int = Field(foreign_key="listings.id", index=True)
    position: int = Field(default=0)
    filename: str = Field(max_length=80)
    thumb_filename: str = Field(max_length=80)
    content_type: str = Field(max_length=40)
