"""chat messages keep the sender's idempotency key and the seq they were published at

Revision ID: 0011_chat_keys
Revises: 0009_offer_chain
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op


revision = '0011_chat_keys'
down_revision = '0009_offer_chain'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_key', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True))
        batch_op.add_column(sa.Column('published_seq', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint('uq_chat_messages_show_user_key', ['show_id', 'user_id', 'client_key'])


def downgrade() -> None:
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.drop_constraint('uq_chat_messages_show_user_key', type_='unique')
        batch_op.drop_column('published_seq')
        batch_op.drop_column('client_key')
