"""kb: knowledge-base articles, deflections, post-mortems, and the articles' full-text
index (FTS5 on SQLite, tsvector + GIN on PostgreSQL, as message_search)

Revision ID: 0010_kb
Revises: 0007_desk_indexes
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0010_kb'
down_revision: str | None = '0008_desk_speed'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DT = sa.DateTime(timezone=True)


def _text(name: str) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=False)


def _string(name: str, length: int) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=False)


def upgrade() -> None:
    op.create_table(
        'kb_article',
        sa.Column('id', sa.Integer(), nullable=False),
        _string('title', 300), _text('question'), _text('resolution'),
        _string('category', 100), sa.Column('tags', sa.JSON(), nullable=False),
        _string('visibility', 16), _string('status', 16),
        sa.Column('ticket_id', sa.Integer(), nullable=True),
        sa.Column('flags', sa.JSON(), nullable=False),
        _string('created_by', 100), _string('published_by', 100),
        sa.Column('created_at', _DT, nullable=False),
        sa.Column('updated_at', _DT, nullable=False),
        sa.Column('published_at', _DT, nullable=True),
        sa.Column('helpful', sa.Integer(), nullable=False),
        sa.Column('unhelpful', sa.Integer(), nullable=False),
        sa.Column('deflections', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id']),
        sa.PrimaryKeyConstraint('id'))
    for column in ('category', 'status', 'ticket_id'):
        op.create_index(f'ix_kb_article_{column}', 'kb_article', [column])
    op.create_table(
        'kb_deflection',
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('article_id', sa.Integer(), nullable=False),
        _string('customer', 320), sa.Column('at', _DT, nullable=False),
        sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id']),
        sa.ForeignKeyConstraint(['article_id'], ['kb_article.id']),
        sa.PrimaryKeyConstraint('ticket_id'))
    op.create_index('ix_kb_deflection_article_id', 'kb_deflection', ['article_id'])
    op.create_table(
        'kb_postmortem',
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        _text('cause'), _text('fix'), _text('prevention'), _string('written_by', 100),
        sa.Column('at', _DT, nullable=False),
        sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id']),
        sa.PrimaryKeyConstraint('ticket_id'))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE kb_search USING fts5(title, tags, body, "
                   "tokenize = 'unicode61 remove_diacritics 2')")
        op.execute("CREATE TRIGGER kb_search_forget AFTER DELETE ON kb_article "
                   "BEGIN DELETE FROM kb_search WHERE rowid = old.id; END")
    else:
        op.execute("CREATE TABLE kb_search (article_id integer PRIMARY KEY "
                   "REFERENCES kb_article(id) ON DELETE CASCADE, tsv tsvector NOT NULL)")
        op.execute("CREATE INDEX ix_kb_search_tsv ON kb_search USING gin (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS kb_search_forget")
    op.execute("DROP TABLE kb_search")
    op.drop_table('kb_postmortem')
    op.drop_table('kb_deflection')
    op.drop_table('kb_article')
