"""web presence: who has a ticket's reply box open (the desk's collision notice)

Revision ID: 0006_web_presence
Revises: 0005_search
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0006_web_presence'
down_revision: str | None = '0005_search'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('web_presence',
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('agent', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id', 'agent')
    )
    with op.batch_alter_table('web_presence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_presence_expires_at'), ['expires_at'],
                              unique=False)


def downgrade() -> None:
    op.drop_table('web_presence')
