"""ticket operations: links between tickets (related, parent), merges (undoable),
time spent and VIP customers

Revision ID: 0011_ticket_ops
Revises: 0007_desk_indexes
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0011_ticket_ops'
down_revision: str | None = '0010_kb'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ticket_link',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('other_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['other_id'], ['ticket.id'], ),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ticket_id', 'other_id', 'kind', name='uq_ticket_link')
    )
    with op.batch_alter_table('ticket_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_link_ticket_id'), ['ticket_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_link_other_id'), ['other_id'], unique=False)
    op.create_table('ticket_merge',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status_before', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('message_ids', sa.JSON(), nullable=False),
    sa.Column('event_ids', sa.JSON(), nullable=False),
    sa.Column('watchers_added', sa.JSON(), nullable=False),
    sa.Column('undone_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('undone_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['ticket.id'], ),
    sa.ForeignKeyConstraint(['target_id'], ['ticket.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ticket_merge', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_merge_source_id'), ['source_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_merge_target_id'), ['target_id'],
                              unique=False)


    op.create_table('time_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('agent', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('queue', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('time_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_time_entry_ticket_id'), ['ticket_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_time_entry_agent'), ['agent'], unique=False)
        batch_op.create_index(batch_op.f('ix_time_entry_at'), ['at'], unique=False)


    op.create_table('contact_vip',
    sa.Column('contact_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('set_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ),
    sa.PrimaryKeyConstraint('contact_id')
    )


def downgrade() -> None:
    op.drop_table('contact_vip')
    op.drop_table('time_entry')
    op.drop_table('ticket_merge')
    op.drop_table('ticket_link')
