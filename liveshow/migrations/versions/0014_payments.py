"""payments: checkouts (bundles), webhook events, sellers' payment settings, refunds, shipping

Revision ID: 0014_payments
Revises: 0011_chat_keys
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op


revision = '0014_payments'
down_revision = '0011_chat_keys'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'payments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('buyer_id', sa.Integer(), nullable=False),
        sa.Column('seller_id', sa.Integer(), nullable=False),
        sa.Column('show_id', sa.Integer(), nullable=True),
        sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column('items_cents', sa.Integer(), nullable=False),
        sa.Column('shipping_cents', sa.Integer(), nullable=False),
        sa.Column('fee_cents', sa.Integer(), nullable=False),
        sa.Column('amount_cents', sa.Integer(), nullable=False),
        sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column('intent_id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column('client_secret', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('refunded_cents', sa.Integer(), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('paid_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['buyer_id'], ['users.id']),
        sa.ForeignKeyConstraint(['seller_id'], ['users.id']),
        sa.ForeignKeyConstraint(['show_id'], ['shows.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('intent_id', name='uq_payments_intent'),
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_buyer_id'), ['buyer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_seller_id'), ['seller_id'], unique=False)
    op.create_table(
        'processor_events',
        sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
        sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'seller_payments',
        sa.Column('seller_id', sa.Integer(), nullable=False),
        sa.Column('shipping_cents', sa.Integer(), nullable=False),
        sa.Column('stripe_account', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['seller_id'], ['users.id']),
        sa.PrimaryKeyConstraint('seller_id'),
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fee_cents', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('payment_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_orders_payment_id'), ['payment_id'], unique=False)
        batch_op.create_foreign_key('fk_orders_payment_id', 'payments', ['payment_id'], ['id'])
        batch_op.add_column(sa.Column('refund_status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('refunded_cents', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('refund_ref', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('refund_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('carrier', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('tracking_number', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint('fk_orders_payment_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_orders_payment_id'))
        for name in ('payment_id', 'fee_cents', 'tracking_number', 'carrier', 'refund_ref', 'refund_attempts', 'refunded_cents', 'refund_status'):
            batch_op.drop_column(name)
    op.drop_table('seller_payments')
    op.drop_table('processor_events')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payments_seller_id'))
        batch_op.drop_index(batch_op.f('ix_payments_buyer_id'))
    op.drop_table('payments')
