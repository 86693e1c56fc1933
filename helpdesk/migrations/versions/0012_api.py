"""api: tokens (hashed), webhook events and their deliveries

Revision ID: 0012_api
Revises: 0007_desk_indexes
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0012_api'
down_revision: str | None = '0011_ticket_ops'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('hint', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('agent', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_token_agent'), ['agent'], unique=False)

    op.create_table('hook_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fanned_out', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('hook_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hook_event_ticket_id'), ['ticket_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_hook_event_fanned_out'), ['fanned_out'], unique=False)

    op.create_table('hook_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('hook', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['hook_event.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id', 'hook', name='uq_hook_delivery_event_hook')
    )
    with op.batch_alter_table('hook_delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hook_delivery_event_id'), ['event_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_hook_delivery_hook'), ['hook'], unique=False)
        batch_op.create_index(batch_op.f('ix_hook_delivery_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_hook_delivery_next_attempt_at'), ['next_attempt_at'],
                              unique=False)


def downgrade() -> None:
    op.drop_table('hook_delivery')
    op.drop_table('hook_event')
    op.drop_table('api_token')
