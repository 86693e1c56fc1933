"""Contacts (a customer and their tickets, as the desk's customer page shows them) and
the helpdesk's figures (report/stats.py, as `helpdesk stats` prints them).

A contact none of whose tickets the token's agent may see is a 404 for an agent (they
learn nothing of other teams' customers, as on the desk). The figures cover every
queue, so they are for leads and admins (403 for an agent).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlmodel import Session

from helpdesk import clock
from helpdesk.report import stats
from helpdesk.store import contacts_ops, queries
from helpdesk.store.db import snapshot_scope
from helpdesk.store.models import Contact
from helpdesk.store.queries import QueueQuery
from helpdesk.web import queues
from helpdesk.web.api import schemas
from helpdesk.web.api.auth import ApiError
from helpdesk.web.api.read import scope_of, summary
from helpdesk.web.api.table import Call, Result


def _contact_out(session: Session, call: Call, contact: Contact | None) -> schemas.ContactOut:
    if contact is None or contact.id is None:
        raise ApiError(404, "No such contact.")
    scope = scope_of(call.web, call.caller)
    rows = queries.queue_rows(session, scope, QueueQuery(
        view="all", status="any", contact_id=contact.id, sort="activity", limit=50),
        queues.KEYS, clock.now())
    if not rows and scope.queues is not None:
        raise ApiError(404, "No such contact.")
    settings = call.web.settings
    return schemas.ContactOut(id=contact.id, email=contact.email, name=contact.name,
                              organisation=contacts_ops.organisation(settings, contact.email),
                              vip=contacts_ops.is_vip(session, contact.email),
                              created_at=contact.created_at,
                              tickets=[summary(call.web, r.ticket, r.customer) for r in rows])


def show_contact(call: Call) -> Result:
    with snapshot_scope(call.web.engine) as session:
        return Result(_contact_out(session, call, session.get(Contact, call.path["number"])))


def find_contact(call: Call) -> Result:
    q: schemas.ContactQuery = call.query
    with snapshot_scope(call.web.engine) as session:
        return Result(_contact_out(session, call, queries.contact_by_email(session, q.email)))


def show_stats(call: Call) -> Result:
    if not call.caller.who.has_role("lead"):
        raise ApiError(403, "The figures cover every queue: for leads and admins.")
    q: schemas.StatsQuery = call.query
    now = clock.now()
    since = datetime.combine(q.since, time(), UTC) if q.since else now - timedelta(days=7)
    with snapshot_scope(call.web.engine) as session:
        data = stats.compute(session, now, since)
    return Result(schemas.Stats.model_validate(data))
