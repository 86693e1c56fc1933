"""The customer's status pages under /portal on the public listener (issue #16): a
ticket's status in words, its public conversation, the SLA promise, a reply form and
"solved for me" / "still broken"; a customer's list of tickets by a mailed link.

Nobody signs in: a signed, expiring link (outgoing/portal_links.py) is the key to one
ticket or one customer's list. A GET changes nothing (mail scanners open links);
every change is a POST with a CSRF token bound to a cookie and to the link.

- app.py: the starlette app mounted at /portal (web/app.py), its routes and refusals.
- guard.py: the CSRF cookie and token, bounded form reading.
- view.py: what a ticket's page shows (status words, conversation, SLA promise).
- reply.py: a reply typed on the page, as a mail from the customer into the spool.
- changes.py: "solved for me" and "still broken".
- mailing.py: links mailed through the outbox (a list of tickets, a fresh link), rate-limited.
- render.py: templates/portal/ through the mail templates' search path, headers, CSS.
"""
