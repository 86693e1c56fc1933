"""Tell the admins: configuration refused, a mailbox unreachable, mail stuck.

Alerts go through the outbox like every other mail, in their own transaction,
and are rate limited per fault so a persistent one does not flood anyone: an alert
is not sent again within the hour for the same `key`, by default its subject. A
caller whose subject stays the same while the fault changes (a rules file refused
for one mistake, then another) passes the error text as the key: each new error is
news. The key's digest rides in the alert's Message-ID, where it can be found again.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import col, select

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.outgoing import compose as mailout
from helpdesk.store.db import session_scope
from helpdesk.store.models import Outbox

log = logging.getLogger("helpdesk.outgoing.to_admins")
QUIET = timedelta(hours=1)


def _hint(full_subject: str, key: str | None) -> str:
    """A Message-ID part that names the fault (subject and key), the same for the same one."""
    fault = f"{full_subject}\0{key if key is not None else ''}"
    return "alert-" + hashlib.sha256(fault.encode()).hexdigest()[:20]


def alert_admins(settings: Settings, engine: Engine, subject: str, text: str,
                 key: str | None = None) -> bool:
    """Queue an alert to [helpdesk] admins; False when none are configured or one was
    sent on the same subject (and `key`, when given) within the last hour."""
    admins = list(settings.helpdesk.admins)
    if not admins:
        log.warning("no admins configured to alert: %s", subject)
        return False
    full_subject = f"[{settings.helpdesk.name}] {subject}"
    hint = _hint(full_subject, key)
    with session_scope(engine) as session:
        since = clock.now() - QUIET
        recent = session.exec(
            select(Outbox.message_id).where(
                Outbox.kind == "alert", col(Outbox.created_at) >= since)
        ).all()
        if any(f".{hint}@" in message_id for message_id in recent):
            return False
        msg = mailout.build(settings, to=admins, subject=full_subject, text=text,
                            automatic=True, id_hint=hint)
        mailout.queue(session, msg, kind="alert", ticket_id=None, mail_from="",
                      automatic=True)
    log.warning("admins alerted: %s", subject)
    return True
