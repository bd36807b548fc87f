"""sequence numbers reserved per topic in the database (numbering survives losing Redis)

Revision ID: 0010_seq_blocks
Revises: 0009_offer_chain
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op


revision = '0010_seq_blocks'
down_revision = '0009_offer_chain'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'seq_blocks',
        sa.Column('topic', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column('reserved', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('topic'),
    )
    # Shows numbered before this version: their archived numbers are handed out. Numbers given to
    # presence and private events after the last archived one are not known here, so leave a block's
    # room above it (the bus's SEQ_BLOCK).
    op.execute(
        "INSERT INTO seq_blocks (topic, reserved) "
        "SELECT 'show:' || CAST(show_id AS VARCHAR), MAX(seq) + 1000 FROM show_events GROUP BY show_id"
    )


def downgrade() -> None:
    op.drop_table('seq_blocks')
