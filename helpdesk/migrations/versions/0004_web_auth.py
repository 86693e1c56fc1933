"""web auth: sessions, magic-link tokens, passwords, sign-in attempts

Revision ID: 0004_web_auth
Revises: 0003_scheduler
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0004_web_auth'
down_revision: str | None = "0003_scheduler"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('web_session',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('agent', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('client', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('user_agent', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_session_agent'), ['agent'], unique=False)
        batch_op.create_index(batch_op.f('ix_web_session_expires_at'), ['expires_at'], unique=False)

    op.create_table('web_login_token',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('agent', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('web_login_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_login_token_agent'), ['agent'], unique=False)
        batch_op.create_index(batch_op.f('ix_web_login_token_expires_at'), ['expires_at'], unique=False)

    op.create_table('web_password',
    sa.Column('agent', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('agent')
    )

    op.create_table('web_attempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('web_attempt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_attempt_key'), ['key'], unique=False)
        batch_op.create_index(batch_op.f('ix_web_attempt_at'), ['at'], unique=False)


def downgrade() -> None:
    op.drop_table('web_attempt')
    op.drop_table('web_password')
    op.drop_table('web_login_token')
    op.drop_table('web_session')
