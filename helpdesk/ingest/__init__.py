"""Ways mail comes in: each stores the raw bytes in the spool before saying yes."""
