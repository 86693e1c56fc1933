"""desk on PostgreSQL: the open-ticket lists and counts read the index alone

Revision ID: 0015_desk_pg
Revises: 0014_internal

ix_ticket_desk (0007) lets SQLite list and count the open tickets from the index alone,
because a SQLite index carries the row id. A PostgreSQL index does not carry the
primary key: every queue page there visited the row of each open ticket (bench/web.py,
100,000 tickets: 2,000 heap pages, the page of ids ~9 ms instead of ~1 ms, the overdue
count ~25 ms). On PostgreSQL this index replaces ix_ticket_desk with the same columns
and the id included (INCLUDE is PostgreSQL's; SQLite keeps ix_ticket_desk unchanged).
Not partial on the open statuses: the statuses are bound parameters, and a prepared
statement's generic plan could not prove a partial index's predicate.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0015_desk_pg'
down_revision: str | None = '0014_internal'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ['status', 'queue', 'assignee', 'priority', 'first_response_at']


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.create_index('ix_ticket_desk_pg', 'ticket', COLUMNS, unique=False,
                    postgresql_include=['id'])
    op.drop_index('ix_ticket_desk', table_name='ticket')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.create_index('ix_ticket_desk', 'ticket', COLUMNS, unique=False)
    op.drop_index('ix_ticket_desk_pg', table_name='ticket')
