"""Values kept between scheduler passes (table scheduler_state): the pass's watermark and
config fingerprint (schedule/sweep.py), and the retention watermarks
(schedule/retention.py), which `helpdesk outbox retry` lowers for a mail sent again."""

from __future__ import annotations

from sqlmodel import Session

from helpdesk.store.models import SchedulerState

# outbox rows up to this id have been looked at by retention: their text is dropped, or
# they are dead (whose text is kept)
OUTBOX_TEXT_MARK = "retention.outbox"
# hook deliveries up to this id are deleted
HOOK_LOG_MARK = "retention.hooks"


def state(session: Session, name: str) -> str:
    """The value under `name`; "" when never set."""
    row = session.get(SchedulerState, name)
    return row.value if row else ""


def set_state(session: Session, name: str, value: str) -> None:
    row = session.get(SchedulerState, name)
    if row is None:
        session.add(SchedulerState(name=name, value=value))
    else:
        row.value = value


def lower_mark(session: Session, name: str, below: int) -> None:
    """Make an id watermark stop before `below`, so that row is looked at again."""
    mark = state(session, name)
    if mark and int(mark) >= below:
        set_state(session, name, str(below - 1))
