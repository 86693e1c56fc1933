"""The API's reads: tickets (the desk's views and filters: store/queries.py as
web/queues.py uses it), one ticket with its ETag, its messages and attachments, search
(store/search.py as web/search_page.py uses it), queues and the command registry.

A ticket the token's agent may not see is a 404, exactly like one that does not exist
(web/access.py). Cursors are opaque to clients: `a<id>` after a ticket in the `age`
order (a keyset: no depth limit, and a ticket closed or moved between two pages shifts
nothing), `o<offset>` over the other sorted views (the desk's own paging, bounded by its
MAX_OFFSET), `m<id>` after a message, or the search's own cursor.
"""

from __future__ import annotations

import re

from sqlalchemy import func
from sqlmodel import Session, col, select

from helpdesk import clock
from helpdesk.agents import registry
from helpdesk.store import blobs, queries, search
from helpdesk.store.db import snapshot_scope
from helpdesk.store.models import Attachment, Contact, Message
from helpdesk.store.models import Ticket as TicketRow
from helpdesk.store.queries import QueueQuery, Scope
from helpdesk.web import access, queues, ticket_html
from helpdesk.web.api import schemas
from helpdesk.web.api.auth import ApiError, Caller
from helpdesk.web.api.table import Call, Result
from helpdesk.web.context import WebContext

_OFFSET = re.compile(r"o(\d{1,7})")
_AFTER_TICKET = re.compile(r"a(\d{1,10})")
_AFTER = re.compile(r"m(\d{1,10})")
BASE = "/api/v1"


def page_size(web: WebContext, asked: int | None) -> int:
    return min(asked or web.settings.api.page_size, 200)


def scope_of(web: WebContext, caller: Caller) -> Scope:
    return Scope(caller.who.agent.name, access.visible_queues(web.settings, caller.who))


def _bad_cursor() -> ApiError:
    return ApiError(422, "The cursor is not one this API gave out.")


def ticket_out(session: Session, web: WebContext, t: TicketRow) -> schemas.Ticket:
    contact = session.get(Contact, t.contact_id) if t.contact_id else None
    tid = int(t.id or 0)
    return schemas.Ticket(**summary(web, t, contact.email if contact else "").model_dump(),
                          customer_name=contact.name if contact else "",
                          contact_id=t.contact_id, linked_ticket_id=t.linked_ticket_id,
                          first_response_at=t.first_response_at, resolved_at=t.resolved_at,
                          closed_at=t.closed_at, version=queries.ticket_version(session, tid))


def summary(web: WebContext, t: TicketRow, customer: str) -> schemas.TicketSummary:
    return schemas.TicketSummary(
        id=int(t.id or 0), ref=f"{web.settings.helpdesk.ticket_prefix}-{t.id}",
        subject=t.subject, status=t.status, priority=t.priority, queue=t.queue,
        assignee=t.assignee, category=t.category, tags=list(t.tags), customer=customer,
        created_at=t.created_at, updated_at=t.updated_at)


def etag(version: str) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def visible(session: Session, call: Call, number: int) -> TicketRow:
    ticket = access.visible_ticket(session, call.web.settings, call.caller.who, number)
    if ticket is None:
        raise ApiError(404, "No such ticket.")
    return ticket


# -- tickets ------------------------------------------------------------------------------

def _queue_query(session: Session, call: Call, scope: Scope) -> QueueQuery | None:
    q: schemas.TicketQuery = call.query
    if q.queue and scope.queues is not None and q.queue not in scope.queues:
        return None  # a queue not theirs holds nothing they may see
    assignee = {"me": scope.me, "none": ""}.get(q.assignee or "", q.assignee)
    contact_id = None
    if q.customer:
        contact = queries.contact_by_email(session, q.customer)
        contact_id = contact.id if contact and contact.id else -1
    offset, after_id = 0, None
    if (after := _AFTER_TICKET.fullmatch(q.cursor or "")) and q.sort == "age":
        after_id = int(after[1])
    else:
        found = _OFFSET.fullmatch(q.cursor or "o0")
        if found is None or int(found[1]) > queues.MAX_OFFSET:
            raise _bad_cursor()
        offset = int(found[1])
    return QueueQuery(q.view, q.status or "", q.queue or "", assignee, contact_id, q.sort,
                      page_size(call.web, q.limit) + 1, offset, after_id=after_id)


def list_tickets(call: Call) -> Result:
    scope = scope_of(call.web, call.caller)
    with snapshot_scope(call.web.engine) as session:
        query = _queue_query(session, call, scope)
        if query is None:
            return Result(schemas.TicketPage(items=[], next_cursor=None))
        rows = queries.queue_rows(session, scope, query, queues.KEYS, clock.now())
        size = query.limit - 1
        items = [summary(call.web, r.ticket, r.customer) for r in rows[:size]]
    if query.sort == "age":  # a keyset: as deep as the tickets go
        more = len(rows) > size
        return Result(schemas.TicketPage(items=items,
                                         next_cursor=f"a{items[-1].id}" if more else None))
    more = len(rows) > size and query.offset + size <= queues.MAX_OFFSET
    return Result(schemas.TicketPage(items=items,
                                     next_cursor=f"o{query.offset + size}" if more else None))


def show_ticket(call: Call) -> Result:
    with snapshot_scope(call.web.engine) as session:
        out = ticket_out(session, call.web, visible(session, call, call.path["number"]))
    return Result(out, headers=etag(out.version))


# -- messages and attachments -------------------------------------------------------------

def list_messages(call: Call) -> Result:
    q: schemas.PageQuery = call.query
    found = _AFTER.fullmatch(q.cursor or "m0")
    if found is None:
        raise _bad_cursor()
    size = page_size(call.web, q.limit)
    number = call.path["number"]
    with snapshot_scope(call.web.engine) as session:
        visible(session, call, number)
        rows = list(session.exec(select(Message).where(
            Message.ticket_id == number, col(Message.id) > int(found[1]))
            .order_by(col(Message.id)).limit(size + 1)).all())
        files = _attachments(session, [int(m.id or 0) for m in rows[:size]])
        items = [_message_out(m, number, files.get(int(m.id or 0), [])) for m in rows[:size]]
    more = f"m{items[-1].id}" if len(rows) > size else None
    return Result(schemas.MessagePage(items=items, next_cursor=more))


def _attachments(session: Session, ids: list[int]) -> dict[int, list[Attachment]]:
    found: dict[int, list[Attachment]] = {}
    for a in session.exec(select(Attachment).where(col(Attachment.message_id).in_(ids))
                          .order_by(col(Attachment.id))).all():
        found.setdefault(a.message_id, []).append(a)
    return found


def _message_out(m: Message, number: int, files: list[Attachment]) -> schemas.MessageOut:
    return schemas.MessageOut(
        id=int(m.id or 0), ticket_id=m.ticket_id, direction="out" if m.direction == "out"
        else "in", internal=m.internal, from_addr=m.from_addr, from_name=m.from_name,
        to=list(m.to), cc=list(m.cc), subject=m.subject, text=m.body_text,
        created_at=m.created_at,
        attachments=[schemas.AttachmentInfo(
            id=int(a.id or 0), filename=a.filename, content_type=a.content_type, size=a.size,
            url=f"{BASE}/tickets/{number}/attachments/{a.id}") for a in files])


def attachment(call: Call) -> Result:
    number, aid = call.path["number"], call.path["aid"]
    with snapshot_scope(call.web.engine) as session:
        visible(session, call, number)
        a = session.get(Attachment, aid)
        m = session.get(Message, a.message_id) if a is not None else None
        if a is None or m is None or m.ticket_id != number:
            raise ApiError(404, "No such attachment on this ticket.")
    source = blobs.open_attachment(call.web.engine, call.web.settings.data_dir, a.sha256)
    if source is None:  # a file another daemon wrote before 0016_blobs_pg (docs/scaling.md)
        raise ApiError(503, "This attachment is not stored on this server.",
                       headers={"Retry-After": "60"})
    # served as the desk serves it: a download, never inline, nosniff
    return Result(ticket_html.download(source, a.filename, a.content_type))


# -- search, queues, commands -------------------------------------------------------------

def search_messages(call: Call) -> Result:
    q: schemas.SearchQuery = call.query
    settings, who = call.web.settings, call.caller.who
    allowed = access.visible_queues(settings, who)
    if q.queue and allowed is not None and q.queue not in allowed:
        return Result(schemas.SearchPage(items=[], next_cursor=None))
    if q.cursor and not q.cursor.isdigit():
        raise _bad_cursor()
    size = page_size(call.web, q.limit)
    # what the token's agent may see (web/access.py's rule, as the desk's search)
    filters = search.Filters(statuses=[q.status] if q.status else [],
                             queues=[q.queue] if q.queue else [],
                             assignees=[q.assignee] if q.assignee else [],
                             customer=q.customer or "", scope=access.scope(settings, who))
    with snapshot_scope(call.web.engine) as session:
        hits = search.search(session, q.q, filters, size + 1, q.cursor or "")
    items = [schemas.SearchHit(
        ticket_id=h.ticket_id, message_id=h.message_id, subject=h.subject,
        internal=h.internal, direction=h.direction, at=h.at,
        snippet=[schemas.Segment(text=s.text, match=s.match) for s in h.snippet])
        for h in hits[:size]]
    more = hits[size - 1].cursor if len(hits) > size else None
    return Result(schemas.SearchPage(items=items, next_cursor=more or None))


def list_queues(call: Call) -> Result:
    settings = call.web.settings
    allowed = access.visible_queues(settings, call.caller.who)
    with snapshot_scope(call.web.engine) as session:
        counts = dict(session.exec(
            select(TicketRow.queue, func.count()).where(
                col(TicketRow.status).in_(queries.OPEN_STATUSES))
            .group_by(TicketRow.queue)).all())
    names = set(allowed) if allowed is not None else {
        *settings.queue, settings.helpdesk.default_queue, *counts}
    return Result(schemas.QueueList(items=[schemas.QueueOut(name=n, open=int(counts.get(n, 0)))
                                           for n in sorted(names)]))


def list_commands(call: Call) -> Result:
    return Result(schemas.CommandList(items=[schemas.CommandInfo(name=c.name, help=c.help_line())
                                             for c in registry.commands()]))
