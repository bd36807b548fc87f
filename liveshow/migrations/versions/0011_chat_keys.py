"""chat messages keep the sender's idempotency key and the seq they were published at; the answers
to keyed room commands are kept

Revision ID: 0011_chat_keys
Revises: 0010_seq_blocks
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op


revision = '0011_chat_keys'
down_revision = '0010_seq_blocks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_key', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True))
        batch_op.add_column(sa.Column('published_seq', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint('uq_chat_messages_show_user_key', ['show_id', 'user_id', 'client_key'])

    op.create_table('room_command_answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('show_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('client_key', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('reply', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['show_id'], ['shows.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('show_id', 'user_id', 'client_key', name='uq_room_command_answers_show_user_key')
    )
    with op.batch_alter_table('room_command_answers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_room_command_answers_show_id'), ['show_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('room_command_answers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_room_command_answers_show_id'))
    op.drop_table('room_command_answers')
    with op.batch_alter_table('chat_messages', schema=None) as batch_op:
        batch_op.drop_constraint('uq_chat_messages_show_user_key', type_='unique')
        batch_op.drop_column('published_seq')
        batch_op.drop_column('client_key')
