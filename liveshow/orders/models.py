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
    # Retries of a failed refund; each gets a fresh idempotency key (a processor answers a repeated key
    # with the first, failed, answer).
    refund_attempts: int = 0
    # The platform's fee on this order, set when it is paid (0 when paid outside liveshow).
    fee_cents: int = 0
    # The checkout that paid it (one per buyer, seller and show: the bundle), when paid through one.
    payment_id: int | None = Field(default=None, foreign_key="payments.id", index=True)
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


class Payment(SQLModel, table=True):
    """One checkout: a buyer pays a seller once for their bundle (all their wins in a show plus one
    shipping fee). With Stripe it is one PaymentIntent, paid only when the signed webhook says so."""

    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("intent_id", name="uq_payments_intent"),)

    id: int | None = Field(default=None, primary_key=True)
    buyer_id: int = Field(foreign_key="users.id", index=True)
    seller_id: int = Field(foreign_key="users.id", index=True)
    show_id: int | None = Field(default=None, foreign_key="shows.id")
    provider: str = Field(max_length=12)
    status: str = Field(default="open", max_length=12)  # open | succeeded | canceled
    items_cents: int
    shipping_cents: int = 0
    fee_cents: int = 0
    amount_cents: int  # items + shipping: what the buyer pays
    currency: str = Field(default="usd", max_length=3)
    intent_id: str | None = Field(default=None, max_length=80)
    client_secret: str = Field(default="", max_length=200)
    last_error: str = Field(default="", max_length=200)
    refunded_cents: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    paid_at: datetime | None = None


class ProcessorEvent(SQLModel, table=True):
    """Each webhook event applied once: its id is recorded in the same transaction that applies it."""

    __tablename__ = "processor_events"

    id: str = Field(primary_key=True, max_length=80)
    kind: str = Field(max_length=60)
    received_at: datetime = Field(default_factory=utcnow)


class SellerPayments(SQLModel, table=True):
    """A seller's payment settings: the shipping fee per bundle and their Stripe connected account."""

    __tablename__ = "seller_payments"

    seller_id: int = Field(foreign_key="users.id", primary_key=True)
    shipping_cents: int = 0
    stripe_account: str = Field(default="", max_length=80)
    updated_at: datetime = Field(default_factory=utcnow)
