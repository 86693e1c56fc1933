"""Tell the admins: configuration refused, a mailbox unreachable, mail stuck.

Alerts go through the outbox like every other mail, in their own transaction,
and are rate limited per subject so a persistent fault does not flood anyone.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import col, select

from helpdesk import clock, mailout
from helpdesk.config import Settings
from helpdesk.store.db import session_scope
from helpdesk.store.models import Outbox

log = logging.getLogger("helpdesk.alerts")
QUIET = timedelta(hours=1)


def alert_admins(settings: Settings, engine: Engine, subject: str, text: str) -> bool:
    """Queue an alert to [helpdesk] admins; False when none are configured or one was
    sent on the same subject within the last hour."""
    admins = list(settings.helpdesk.admins)
    if not admins:
        log.warning("no admins configured to alert: %s", subject)
        return False
    full_subject = f"[{settings.helpdesk.name}] {subject}"
    with session_scope(engine) as session:
        since = clock.now() - QUIET
        recent = session.exec(
            select(Outbox.id, Outbox.raw).where(
                Outbox.kind == "alert", col(Outbox.created_at) >= since)
        ).all()
        if any(full_subject.encode() in raw for _, raw in recent):
            return False
        msg = mailout.build(settings, to=admins, subject=full_subject, text=text,
                            automatic=True, id_hint="alert")
        mailout.queue(session, msg, kind="alert", ticket_id=None, mail_from="",
                      automatic=True)
    log.warning("admins alerted: %s", subject)
    return True
