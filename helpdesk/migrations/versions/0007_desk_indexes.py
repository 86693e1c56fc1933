"""desk indexes: the open-ticket lists and counts of the queue pages, and a ticket's
follow-ups

Revision ID: 0007_desk_indexes
Revises: 0006_web_presence

bench/web.py (100,000 tickets, 1,000,000 messages, SQLite): every queue page counts its
tabs over the open tickets several times and pages through them sorted by priority;
with only ix_ticket_status each pass looked up every open ticket's row (4 kB pages
away). ix_ticket_desk holds what those passes read (status, queue, assignee, priority,
first_response_at; the id comes with it), so they read the index alone: the counts
went from ~70 ms to ~17 ms and a page of rows from ~45 ms to ~1 ms in that database.
ix_ticket_linked_ticket_id: the ticket page's follow-up tickets scanned the whole table.
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0007_desk_indexes'
down_revision: str | None = '0006_web_presence'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.create_index('ix_ticket_desk', ['status', 'queue', 'assignee', 'priority',
                                                 'first_response_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_linked_ticket_id'), ['linked_ticket_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_linked_ticket_id'))
        batch_op.drop_index('ix_ticket_desk')
