"""Social tables. Money is integer cents; times are aware UTC."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from liveshow.clock import utcnow


class Like(SQLModel, table=True):
    __tablename__ = "likes"
    __table_args__ = (UniqueConstraint("user_id", "listing_id", name="uq_likes_user_listing"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    # Likes go with their listing (a seller may delete an unsold item someone liked).
    listing_id: int = Field(foreign_key="listings.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)


class Follow(SQLModel, table=True):
    __tablename__ = "follows"
    __table_args__ = (UniqueConstraint("follower_id", "seller_id", name="uq_follows_pair"),)

    id: int | None = Field(default=None, primary_key=True)
    follower_id: int = Field(foreign_key="users.id", index=True)
    seller_id: int = Field(foreign_key="users.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)


class Notice(SQLModel, table=True):
    __tablename__ = "notices"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    kind: str = Field(max_length=30)
    text: str = Field(max_length=300)
    url: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    read_at: datetime | None = None


class NoticePref(SQLModel, table=True):
    """A row only where the user turned a kind off (or back on): absent means the default (on)."""

    __tablename__ = "notice_prefs"
    __table_args__ = (UniqueConstraint("user_id", "kind", name="uq_notice_prefs_user_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    kind: str = Field(max_length=30)
    enabled: bool = Field(default=True)


class PushSubscription(SQLModel, table=True):
    __tablename__ = "push_subscriptions"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    endpoint: str = Field(max_length=1000, unique=True)
    p256dh: str = Field(max_length=200)
    auth: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow)


class Offer(SQLModel, table=True):
    __tablename__ = "offers"

    id: int | None = Field(default=None, primary_key=True)
    listing_id: int = Field(foreign_key="listings.id", index=True, ondelete="CASCADE")
    seller_id: int = Field(foreign_key="users.id", index=True)
    buyer_id: int = Field(foreign_key="users.id", index=True)
    price_cents: int
    expires_at: datetime
    status: str = Field(default="open", max_length=12)  # open | accepted | cancelled
    # The order it became (orders live in the auction package; no FK so the tables stay independent).
    order_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Giveaway(SQLModel, table=True):
    __tablename__ = "giveaways"

    id: int | None = Field(default=None, primary_key=True)
    show_id: int = Field(foreign_key="shows.id", index=True)
    listing_id: int = Field(foreign_key="listings.id")
    state: str = Field(default="open", max_length=10)  # open | drawn
    seed: str = Field(default="", max_length=64)
    winner_id: int | None = Field(default=None, foreign_key="users.id")
    order_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    drawn_at: datetime | None = None


class GiveawayEntry(SQLModel, table=True):
    __tablename__ = "giveaway_entries"
    __table_args__ = (UniqueConstraint("giveaway_id", "user_id", name="uq_giveaway_entries_user"),)

    id: int | None = Field(default=None, primary_key=True)
    giveaway_id: int = Field(foreign_key="giveaways.id", index=True)
    user_id: int = Field(foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow)


class ListingEmbedding(SQLModel, table=True):
    __tablename__ = "listing_embeddings"

    listing_id: int = Field(foreign_key="listings.id", primary_key=True, ondelete="CASCADE")
    model: str = Field(max_length=60)
    # The text the vector was made from, hashed, so an unchanged listing is not embedded again.
    text_hash: str = Field(max_length=64)
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # float32, L2-normalised
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class Milestone(SQLModel, table=True):
    """Steps of the first-sale path that leave no other trace (shared a show, saw the celebration)."""

    __tablename__ = "seller_milestones"
    __table_args__ = (UniqueConstraint("user_id", "kind", name="uq_seller_milestones_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    kind: str = Field(max_length=30)
    ref_id: int | None = None
    at: datetime = Field(default_factory=utcnow)


class NoticeFanout(SQLModel, table=True):
    """One row per announcement sent (e.g. "live:12"), so several processes announce a show once."""

    __tablename__ = "notice_fanouts"

    key: str = Field(primary_key=True, max_length=60)
    at: datetime = Field(default_factory=utcnow)


class ViewerSample(SQLModel, table=True):
    """Viewers in a show's room at a moment (presence is not archived with the show's events)."""

    __tablename__ = "show_viewer_samples"

    id: int | None = Field(default=None, primary_key=True)
    show_id: int = Field(foreign_key="shows.id", index=True)
    viewers: int
    at: datetime = Field(default_factory=utcnow)
