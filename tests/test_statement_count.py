"""The SQL statements the pipeline sends for one mail, counted (SQLite): each statement
costs the pipeline's thread CPU (issue #18), so one more per mail should be a decision,
not an accident. A change that adds or saves one updates the numbers and the lists here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event

from helpdesk.config.settings import Settings
from helpdesk.pipeline import Pipeline
from helpdesk.spool import Envelope, Spool
from helpdesk.store import db
from tests.helpers import make_mail

ENVELOPE = Envelope(route="smtp", mail_from="carol@customer.test",
                    rcpt_tos=("support@example.test",))

# A customer's first mail, opening a ticket and acknowledged:
#   BEGIN IMMEDIATE, SAVEPOINT
#   SELECT outbox/message      its dedupe key: stored before? its Message-ID and references:
#                              ours? (queries.message_id_owners)
#   SELECT contact             the sender: contact, ticket count, VIP (contacts_ops.sender)
#   INSERT contact, INSERT ticket
#   INSERT event               "created" (no webhook event: no [[api_hook]] wants one)
#   INSERT message, INSERT message_search
#   SELECT outbox              acknowledgements to the sender this hour (rate limit)
#   INSERT event, INSERT outbox  the acknowledgement
#   RELEASE SAVEPOINT
NEW_MAIL = 13
# The customer's reply to it (In-Reply-To and References name their first mail):
#   BEGIN IMMEDIATE, SAVEPOINT
#   SELECT outbox/message      the dedupe key, its Message-ID and references
#                              (queries.message_id_owners)
#   SELECT contact/outbox/message  the ticket's customer and our Message-IDs on it
#   SELECT message             the conversation's addresses (thread.participants)
#   SELECT ticket_merge        merged into another ticket? (ticket_ops.survivor)
#   SELECT ticket
#   SELECT contact             the sender (contacts_ops.sender)
#   INSERT message, INSERT message_search
#   INSERT event               "reply"
#   UPDATE ticket              updated_at, at the next flush (store_incoming does not flush)
#   SELECT review              a resolution held for review to withdraw?
#   SELECT watcher             whom to tell (agents/notify.py)
#   RELEASE SAVEPOINT
REPLY = 15


def _statements(pipeline: Pipeline, spool: Spool, raw: bytes) -> list[str]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split())[:120])

    spool.put(raw, ENVELOPE)
    event.listen(pipeline.writer, "before_cursor_execute", count)
    try:
        assert [o.kind for o in pipeline.process_batch()] == ["stored"]
    finally:
        event.remove(pipeline.writer, "before_cursor_execute", count)
    return seen


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_statements_of_a_new_mail_and_of_a_reply_are_counted(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    db.upgrade(settings.database_url)
    spool = Spool(settings.data_dir / "spool")
    # the daemon's engine: it records only the webhook events a configured hook is sent
    engine = db.engine_for(settings)
    pipeline = Pipeline(settings, engine, spool, reply_hooks=[])
    # someone else's mail first: the first statements of a process are not a mail's
    _statements(pipeline, spool, make_mail(sender="dave@customer.test",
                                           message_id="<warm@customer.test>").as_bytes())

    new = _statements(pipeline, spool, make_mail(message_id="<one@customer.test>").as_bytes())
    assert len(new) == NEW_MAIL, "\n".join(new)
    reply = _statements(pipeline, spool, make_mail(
        subject="Re: Printer on fire", message_id="<two@customer.test>",
        in_reply_to="<one@customer.test>", references="<one@customer.test>").as_bytes())
    assert len(reply) == REPLY, "\n".join(reply)
