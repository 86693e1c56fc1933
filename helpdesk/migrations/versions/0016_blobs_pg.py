"""blobs_pg: originals, attachments and quarantined mails in the database (PostgreSQL),
content-addressed by sha256 and kept in chunks (helpdesk/store/blobs.py). Created on
both dialects so the schema is one; only PostgreSQL writes to it.

Revision ID: 0016_blobs_pg
Revises: 0015_desk_pg
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0016_blobs_pg'
down_revision: str | None = '0015_desk_pg'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'blob',
        sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('chunks', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('sha256'),
    )
    op.create_table(
        'blob_chunk',
        sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['sha256'], ['blob.sha256']),
        sa.PrimaryKeyConstraint('sha256', 'seq'),
    )


def downgrade() -> None:
    op.drop_table('blob_chunk')
    op.drop_table('blob')
