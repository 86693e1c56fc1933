"""Reports on the running helpdesk: health (what /healthz and status say), status
(the snapshot a daemon writes and `helpdesk status` reads), stats and their
presentation as text (present).

May import: the base, ingest, rules, spool, store, schedule.
"""
