"""Ways mail comes in: SMTP/LMTP listener (smtp.py) and IMAP pollers (imap.py)."""
