"""scheduler: SLA steps, timers, state, surveys; ticket.updated_at index

Revision ID: 0003_scheduler
Revises: 0001
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0003_scheduler'
down_revision: str | None = "0002_agents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ticket_step',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ticket_id', 'key', name='uq_ticket_step_ticket_key')
    )
    with op.batch_alter_table('ticket_step', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_step_ticket_id'), ['ticket_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_step_at'), ['at'], unique=False)

    op.create_table('ticket_timer',
    sa.Column('ticket_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id')
    )
    with op.batch_alter_table('ticket_timer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_timer_due_at'), ['due_at'], unique=False)

    op.create_table('scheduler_state',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )

    op.create_table('survey',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('contact', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('agent', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('queue', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('scale', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('msgid_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('good', sa.Boolean(), nullable=True),
    sa.Column('comment', sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
    sa.Column('rated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rated_via', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ticket_id')
    )
    with op.batch_alter_table('survey', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_survey_contact'), ['contact'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_msgid_key'), ['msgid_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_survey_sent_at'), ['sent_at'], unique=False)

    # the pass finds changed tickets by this index instead of reading them all
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_updated_at'), ['updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_updated_at'))
    with op.batch_alter_table('survey', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_survey_sent_at'))
        batch_op.drop_index(batch_op.f('ix_survey_msgid_key'))
        batch_op.drop_index(batch_op.f('ix_survey_contact'))
    op.drop_table('survey')
    op.drop_table('scheduler_state')
    with op.batch_alter_table('ticket_timer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_timer_due_at'))
    op.drop_table('ticket_timer')
    with op.batch_alter_table('ticket_step', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_step_at'))
        batch_op.drop_index(batch_op.f('ix_ticket_step_ticket_id'))
    op.drop_table('ticket_step')
