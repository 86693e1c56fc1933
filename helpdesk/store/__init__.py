"""The store stage: sqlmodel tables (columns, models, web_models), sessions (db), the
read-only queries other stages use, ticket and staff writes, blobs, full-text search,
and the copy to another database (migrate).

May import: the base, mail and rules (a Decision is stored with its hits).
"""
