"""Order tables. One order per unit sold; a partial unique index keeps one live order per unit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from liveshow.clock import utcnow
from liveshow.orders.states import STATUSES  # noqa: F401  (re-exported: the one list of statuses)

LIVE_WHERE = "status != 'cancelled'"


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        # The final fence: whatever the app does, a unit of a listing is in at most one live order.
        Index(
            "uq_orders_live_unit",
            "listing_id",
            "unit_no",
            unique=True,
            sqlite_where=text(LIVE_WHERE),
            postgresql_where=text(LIVE_WHERE),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    buyer_id: int = Field(foreign_key="users.id", index=True)
    seller_id: int = Field(foreign_key="users.id", index=True)
    listing_id: int = Field(foreign_key="listings.id", index=True)
    unit_no: int  # 1..listing.quantity
    price_cents: int
    source: str = Field(max_length=16)  # claim | auction | second_chance | offer | giveaway | replay
    show_id: int | None = Field(default=None, foreign_key="shows.id", index=True)
    lot_id: int | None = Field(default=None, foreign_key="auction_lots.id")
    status: str = Field(default="awaiting_payment", max_length=20, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    pay_by: datetime
    paid_at: datetime | None = None
    payment_ref: str = Field(default="", max_length=80)
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str = Field(default="", max_length=40)
    # A cancelled order the buyer had paid for: "" (nothing to give back) | pending | refunded | failed.
    refund_status: str = Field(default="", max_length=12)
    refunded_cents: int = 0
    refund_ref: str = Field(default="", max_length=80)
    carrier: str = Field(default="", max_length=40)
    tracking_number: str = Field(default="", max_length=80)


class SecondChanceOffer(SQLModel, table=True):
    """When a winner does not pay, the next-highest bidder may buy at their own maximum."""

    __tablename__ = "second_chance_offers"
    # An unpaid win passes from bidder to bidder (each declines or lets the offer lapse): several offers
    # per order, never two to the same bidder.
    __table_args__ = (UniqueConstraint("order_id", "buyer_id", name="uq_second_chance_order_buyer"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True)
    buyer_id: int = Field(foreign_key="users.id", index=True)
    seller_id: int = Field(foreign_key="users.id")
    listing_id: int = Field(foreign_key="listings.id")
    show_id: int | None = Field(default=None, foreign_key="shows.id")
    lot_id: int | None = Field(default=None, foreign_key="auction_lots.id")
    price_cents: int
    status: str = Field(default="open", max_length=12)  # open | accepted | declined | expired
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    new_order_id: int | None = Field(default=None, foreign_key="orders.id")
