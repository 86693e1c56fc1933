"""The ingest stage: ways mail comes in (SMTP and LMTP listeners, the IMAP poller).
Each stores the raw bytes in the spool before saying yes (250, or MOVE on IMAP).

May import: the base (errors, clock, config) and the spool; nothing of the later stages.
"""
