"""search: the full-text index of messages (FTS5 on SQLite, tsvector + GIN on PostgreSQL)

Revision ID: 0005_search
Revises: 0003_scheduler

Existing messages are indexed here; new ones by helpdesk.store.search.index_message in
the transaction that stores them.
"""
from collections.abc import Sequence

from alembic import op

from helpdesk.store import search

revision: str = '0005_search'
down_revision: str | None = '0004_web_auth'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # the text is kept in the index (not contentless) for snippet(); unicode61 splits
        # on all but letters and digits, and folds accents
        op.execute("CREATE VIRTUAL TABLE message_search USING fts5("
                   "subject, addresses, attachments, body, "
                   "tokenize = 'unicode61 remove_diacritics 2')")
        # FTS5 cannot reference message: a deleted message must take its entry with it
        op.execute("CREATE TRIGGER message_search_forget AFTER DELETE ON message "
                   "BEGIN DELETE FROM message_search WHERE rowid = old.id; END")
    else:
        op.execute("CREATE TABLE message_search ("
                   "message_id integer PRIMARY KEY REFERENCES message(id) ON DELETE CASCADE, "
                   "tsv tsvector NOT NULL)")
        op.execute("CREATE INDEX ix_message_search_tsv ON message_search USING gin (tsv)")
    search.rebuild(op.get_bind())


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS message_search_forget")
    op.execute("DROP TABLE message_search")
