"""The outgoing stage: compose mail (compose), the mail to customers (to_customer)
and to admins (to_admins), and the outbox that sends, retries and gives up.

May import: the base, mail, thread (reply addresses), rules and store.
"""
