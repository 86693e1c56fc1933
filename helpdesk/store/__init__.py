"""Storage: sqlmodel tables, sessions, and the read-only queries other stages use."""
