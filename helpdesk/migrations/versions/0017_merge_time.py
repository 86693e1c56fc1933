"""merge_time: a merge moves the source's time entries too (ticket_merge.time_entry_ids,
so that an unmerge moves them back); merges made before keep theirs where they were.

Revision ID: 0017_merge_time
Revises: 0016_blobs_pg
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017_merge_time'
down_revision: str | None = '0016_blobs_pg'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('ticket_merge', schema=None) as batch_op:
        batch_op.add_column(sa.Column('time_entry_ids', sa.JSON(), nullable=False,
                                      server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('ticket_merge', schema=None) as batch_op:
        batch_op.drop_column('time_entry_ids')
