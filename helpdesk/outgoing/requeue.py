"""Given-up rows queued again by hand, for both of our outboxes: mail (outbox) and
webhook deliveries (hook_delivery), which share the columns this needs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlmodel import Session, col, select

from helpdesk import clock


def requeue_dead(session: Session, model: Any, ids: Iterable[int] | None,
                 *only: ColumnElement[bool]) -> list[int]:
    """Queue `model`'s dead rows again, due now: those of `ids`, or every one (None),
    narrowed by `only`. Returns the ids queued, sorted; rows not dead are left alone."""
    stmt = select(model.id).where(model.status == "dead", *only)
    if ids is not None:
        stmt = stmt.where(col(model.id).in_(list(ids)))
    found = sorted(int(i or 0) for i in session.exec(stmt).all())
    if found:
        session.execute(update(model).where(col(model.id).in_(found), model.status == "dead")
                        .values(status="queued", next_attempt_at=clock.now())
                        .execution_options(synchronize_session=False))
    return found
