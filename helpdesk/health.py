"""Is the daemon fit to take mail? The figures behind /healthz.

Unhealthy (503) means an operator should look: the database does not answer, the
SMTP listener is down, an IMAP mailbox has not been reached for longer than its
stall_alert_after, or outgoing mail has waited past [http] max_outbox_delay.
Mail is still safe in each case (spool, mail server, outbox); it is just not moving.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Engine, func, text
from sqlmodel import col, select

from helpdesk import clock
from helpdesk.config import Settings
from helpdesk.ingest.imap_state import PollerStatus
from helpdesk.present import iso
from helpdesk.store.db import session_scope
from helpdesk.store.models import Outbox


class Observed(Protocol):
    """What health and metrics read from a running daemon."""

    settings: Settings
    engine: Engine | None

    @property
    def smtp_listening(self) -> bool: ...

    def imap_status(self) -> Sequence[PollerStatus]: ...


def database_report(engine: Engine, max_delay: float) -> dict[str, Any]:
    """Database reachability and the outbox backlog (mails due but not yet sent)."""
    now = clock.now()
    try:
        with session_scope(engine) as session:
            session.exec(text("SELECT 1"))  # type: ignore[call-overload]
            waiting, oldest = session.exec(
                select(func.count(), func.min(Outbox.next_attempt_at))
                .where(col(Outbox.status).in_(("queued", "sending")),
                       Outbox.next_attempt_at <= now)).one()
    except Exception as err:  # any failure to answer is the finding itself
        return {"database": {"ok": False, "error": str(err).splitlines()[0]},
                "outbox": {"ok": True, "due": None, "oldest_due_s": None}}
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    age = round((now - oldest).total_seconds(), 1) if oldest is not None else 0.0
    return {"database": {"ok": True},
            "outbox": {"ok": age <= max_delay, "due": int(waiting), "oldest_due_s": age}}


def imap_report(statuses: Sequence[PollerStatus]) -> list[dict[str, Any]]:
    return [{"name": s.name, "ok": s.stalled_since is None, "connected": s.connected,
             "state": s.state, "last_contact": iso(s.last_contact),
             "stalled_since": iso(s.stalled_since), "last_error": s.last_error,
             "errors": s.errors} for s in statuses]


def report(daemon: Observed) -> tuple[bool, dict[str, Any]]:
    """(healthy, details) for /healthz."""
    assert daemon.engine is not None
    data = database_report(daemon.engine, daemon.settings.http.max_outbox_delay)
    smtp_on = daemon.settings.smtp.enabled
    data["smtp"] = {"ok": daemon.smtp_listening or not smtp_on, "enabled": smtp_on,
                    "listening": daemon.smtp_listening}
    data["imap"] = imap_report(daemon.imap_status())
    healthy = (data["database"]["ok"] and data["outbox"]["ok"] and data["smtp"]["ok"]
               and all(m["ok"] for m in data["imap"]))
    data["status"] = "ok" if healthy else "fail"
    return healthy, data
