"""Is the daemon fit to take mail? The figures behind /healthz.

Unhealthy (503) means an operator should look. `status` "fail": the database does
not answer, the SMTP listener is down, an IMAP mailbox has not been reached for
longer than its stall_alert_after, or outgoing mail has waited past [http]
max_outbox_delay; mail is still safe in each case (spool, mail server, outbox), it
is just not moving. `status` "degraded": mail moves, but the last edit of the rules
files was refused: the previous rules are in force and the next start would fail.
`reasons` says in words what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine, func, text
from sqlmodel import col, select

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.ingest.imap_state import PollerStatus
from helpdesk.report.present import iso
from helpdesk.store.db import session_scope
from helpdesk.store.models import Outbox

if TYPE_CHECKING:
    from helpdesk.rules.holder import RulesHolder


class Observed(Protocol):
    """What health and metrics read from a running daemon."""

    settings: Settings
    engine: Engine | None
    # the rules in force and the last refused edit; None: the daemon runs without rules
    rules: RulesHolder | None

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


def rules_report(holder: RulesHolder | None) -> dict[str, Any]:
    """Whether the rules files on disk were accepted: a refused edit leaves the old rules
    running, but a restart would fail, so it must not wait for one to be noticed."""
    error = holder.last_error if holder is not None else None
    return {"ok": error is None, "error": str(error) if error is not None else None}


def _reasons(data: dict[str, Any]) -> list[str]:
    reasons = []
    if not data["database"]["ok"]:
        reasons.append(f"database: {data['database']['error']}")
    if not data["outbox"]["ok"]:
        reasons.append(f"outbox: mail due for {data['outbox']['oldest_due_s']}s not sent")
    if not data["smtp"]["ok"]:
        reasons.append("smtp: not listening")
    reasons += [f"imap {m['name']}: stalled since {m['stalled_since']}"
                for m in data["imap"] if not m["ok"]]
    if not data["rules"]["ok"]:
        reasons.append("rules: last edit refused, previous rules in force, a restart "
                       f"would fail: {data['rules']['error']}")
    return reasons


def report(daemon: Observed) -> tuple[bool, dict[str, Any]]:
    """(healthy, details) for /healthz."""
    assert daemon.engine is not None
    data = database_report(daemon.engine, daemon.settings.http.max_outbox_delay)
    smtp_on = daemon.settings.smtp.enabled
    data["smtp"] = {"ok": daemon.smtp_listening or not smtp_on, "enabled": smtp_on,
                    "listening": daemon.smtp_listening}
    data["imap"] = imap_report(daemon.imap_status())
    data["rules"] = rules_report(daemon.rules)
    mail_moves = (data["database"]["ok"] and data["outbox"]["ok"] and data["smtp"]["ok"]
                  and all(m["ok"] for m in data["imap"]))
    healthy = mail_moves and data["rules"]["ok"]
    data["status"] = "ok" if healthy else "degraded" if mail_moves else "fail"
    data["reasons"] = _reasons(data)
    return healthy, data
