"""web_form: a ticket's channel (mail, web, api), the web form's unconfirmed hold and
when it was lifted (the SLA clocks start then)

Revision ID: 0013_web_form
Revises: 0012_api
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0013_web_form'
down_revision: str | None = '0012_api'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('ticket') as batch:
        batch.add_column(sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16),
                                   nullable=False, server_default='mail'))
        batch.add_column(sa.Column('unconfirmed', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ticket') as batch:
        batch.drop_column('confirmed_at')
        batch.drop_column('unconfirmed')
        batch.drop_column('channel')
