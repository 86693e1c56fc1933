"""What an admin does with a quarantined mail, from the CLI (`helpdesk quarantine`) or
the desk's mail page: release it into the pipeline again, or discard it for good. A
discarded entry stays, marked so, with its raw bytes."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from helpdesk import clock
from helpdesk.errors import HelpdeskError
from helpdesk.spool import Envelope, Spool
from helpdesk.store import blobs
from helpdesk.store.models import Quarantine


class NotHeld(HelpdeskError):
    """No held quarantine entry by that id; the message says what it is instead."""


def _held(session: Session, quarantine_id: int) -> Quarantine:
    row = session.get(Quarantine, quarantine_id)
    if row is None or row.status != "held":
        raise NotHeld(f"no held quarantine entry Q{quarantine_id}"
                      + (f" (it is {row.status})" if row else ""))
    return row


def release(session: Session, data_dir: Path, spool: Spool, quarantine_id: int) -> str:
    """Put the mail into the spool again (the pipeline takes it from there) and mark the
    entry released; the spool entry's name. Spooled before the commit: a failed commit
    leaves the entry held and the mail processed, whose second release is a duplicate."""
    row = _held(session, quarantine_id)
    raw = blobs.for_session(session, data_dir).read(row.raw_path)
    envelope = Envelope(route=row.route or "release", mail_from=row.mail_from,
                        rcpt_tos=tuple(row.rcpt_tos), extra={"released_from": quarantine_id})
    name = spool.put(raw, envelope)
    row.status, row.released_at = "released", clock.now()
    return name


def discard(session: Session, quarantine_id: int) -> str:
    """Mark the entry discarded; what it had been quarantined for."""
    row = _held(session, quarantine_id)
    row.status, row.released_at = "discarded", clock.now()
    return row.reason
