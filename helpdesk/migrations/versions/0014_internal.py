"""internal tickets: opened by an agent (desk, mail, CLI) with no customer

Revision ID: 0014_internal
Revises: 0012_api
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014_internal'
down_revision: str | None = '0013_web_form'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('internal', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_column('internal')
