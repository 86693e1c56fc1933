"""desk speed: the reviews held, found without reading them all

Revision ID: 0008_desk_speed
Revises: 0007_desk_indexes

The queue pages' "held for review" view and its count take the tickets with a pending
review as one set of ids (store/queries.py `_held`) rather than probing the review
table once per open ticket; reviews stay after they are decided, so without an index on
status that set would be read from every review there ever was.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0008_desk_speed'
down_revision: str | None = '0007_desk_indexes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_status'))
