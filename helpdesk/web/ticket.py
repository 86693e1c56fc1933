"""The ticket page: GET /desk/ticket/N, everything the desk knows about one ticket.

Header (fields, SLA clocks in words with their due times, linked tickets, a held
review), the conversation in order (customer mail, our replies, agents' internal
mail and notes marked as such, automatic answers folded away), each message's
attachments, why each message landed on this ticket, and the history. Mail text is
shown as text; "show formatted" frames /desk/ticket/N/message/M/html (ticket_html:
nh3 and a CSP of its own), "load images" the same with https images allowed.

A ticket the agent may not see (another team's queue) is the same 404 page as one
that does not exist: the page tells nobody which numbers are in use. The page only
reads; the action forms (web/actions.py: reply, note, fields, #commands, the collision
notice and "this ticket changed") are templates/web/ticket_actions.html.j2, included
with ticket_forms.form_context(), and the page answers with the CSP their script needs.
A refused form (stale: 409, refused command: 422, too large: 413) is answered with this
whole page again, drawn fresh, with why and what the agent typed (`respond`).
Who may see a ticket is web/access.py's rule, the one every desk page asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from helpdesk import clock
from helpdesk.agents import new_ticket
from helpdesk.agents.registry import split
from helpdesk.config.agents import Directory
from helpdesk.config.settings import Settings
from helpdesk.errors import TemporaryError
from helpdesk.mail import parse
from helpdesk.schedule.sla import LABELS, SlaContext, clocks
from helpdesk.store import blobs, queries, staff
from helpdesk.store.db import session_scope, snapshot_scope
from helpdesk.store.models import Attachment, Contact, Event, Message, Outbox, Review, Ticket
from helpdesk.web import access, auth, pages, ticket_forms, ticket_html, ticket_ops
from helpdesk.web.context import WebContext

# history kinds that file a machine's mail on the ticket (pipeline._file_internal):
# such a message is folded away, like the CLI's "internal" but saying why
AUTOMATIC_KINDS = {"auto-reply": "automatic reply", "bounce": "bounce",
                   "own-mail": "our own mail come back"}
STRANGER_KIND = "unverified-sender"
# the action forms' script (ticket_forms.HEADERS) and the formatted mail's frame from us
HEADERS = {"Content-Security-Policy": ticket_forms.CSP + "; frame-src 'self'"}


@dataclass(frozen=True)
class Delivery:
    """Where a reply to the customer is on its way out (its outbox row)."""

    state: str  # sent, waiting, dead
    tries: int
    error: str  # the relay's last answer, when it refused or deferred
    sent_at: datetime | None


@dataclass
class Shown:
    """One message as the page shows it."""

    message: Message
    kind: str  # customer, reply, held, note, agent, automatic, stranger
    label: str
    internal: bool
    folded: bool = False
    attachments: list[Attachment] = field(default_factory=list)
    delivery: Delivery | None = None  # replies: whether the relay took it


@dataclass
class View:
    ticket: Ticket
    public_id: str
    customer: Contact | None
    messages: list[Shown]
    events: list[Event]
    sla: list[dict[str, str]]
    followers: list[int]
    watchers: list[str]
    review: Review | None
    version: str
    forms: dict[str, Any]  # the action forms' context (ticket_forms.form_context)
    ops: dict[str, Any] = field(default_factory=dict)  # links, merges (web.ticket_ops)
    # mail to the customer the relay refused or that was given up: (what, when, why)
    undelivered: list[tuple[str, datetime, str]] = field(default_factory=list)


# -- reading --------------------------------------------------------------------------

def _view(web: WebContext, who: auth.SignedIn, number: int) -> View | None:
    settings = web.settings
    # one moment: a note committed while the page is read is shown whole or not at all,
    # and the forms' version is the version of what the page shows
    with snapshot_scope(web.engine) as session:
        ticket = access.visible_ticket(session, settings, who, number)
        if ticket is None:
            return None
        tid = int(number)
        # (the action forms' context reads the version: they carry what was read here)
        forms = ticket_forms.form_context(session, web, ticket, who)
        version = forms["version"]
        events = queries.events(session, tid)
        messages = queries.messages(session, tid)
        files = _attachments(session, tid)
        review = staff.pending_review(session, tid)
        held = {r.held_message_id: r.status for r in staff.reviews(session, tid)}
        shown = _classify(messages, events, web.directory(), held)
        customer = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
        deliveries, undelivered = _mail_out(session, tid, customer.email if customer else "")
        for s in shown:
            s.attachments = files.get(int(s.message.id or 0), [])
            if s.kind == "reply":
                s.delivery = deliveries.get(s.message.msgid_key)
        return View(
            ticket=ticket, public_id=f"{settings.helpdesk.ticket_prefix}-{tid}",
            customer=customer, messages=shown, events=events, sla=_sla(session, settings, ticket),
            followers=queries.followers(session, tid), watchers=staff.watchers(session, tid),
            review=review, version=version, forms=forms,
            ops=ticket_ops.context(session, settings, who, ticket),
            undelivered=undelivered)


# what a mail to the customer is, by its outbox kind; others are named by their kind
MAIL_KINDS = {"ack": "the acknowledgement", "agent-reply": "a reply",
              "status-resolved": "the resolution notice", "status-closed": "the closing notice",
              "survey": "the survey", "stale-reminder": "a reminder"}


def _mail_out(session: Session, ticket_id: int, customer: str
              ) -> tuple[dict[str, Delivery], list[tuple[str, datetime, str]]]:
    """The ticket's mail on its way out, read once: each reply's delivery by Message-ID
    key (an agent sees on the ticket that the relay refused a reply, not only the admins
    in their alert), and the mail to the customer that was given up (their address may
    be wrong, worth knowing before waiting on an answer)."""
    stmt = (select(Outbox.kind, Outbox.msgid_key, Outbox.status, Outbox.attempts,
                   Outbox.last_error, Outbox.sent_at, Outbox.created_at, Outbox.recipient)
            .where(Outbox.ticket_id == ticket_id).order_by(col(Outbox.id)))
    replies: dict[str, Delivery] = {}
    undelivered = []
    for kind, key, status, tries, error, sent_at, at, recipient in session.exec(stmt).all():
        if kind == "agent-reply":
            state = status if status in ("sent", "dead") else "waiting"
            replies[key] = Delivery(state, tries, error, sent_at)
        if status == "dead" and customer and recipient == customer.lower():
            undelivered.append((MAIL_KINDS.get(kind, kind), at, error))
    return replies, undelivered


def _attachments(session: Session, ticket_id: int) -> dict[int, list[Attachment]]:
    """The ticket's attachments by message."""
    stmt = (select(Attachment).join(Message, col(Message.id) == col(Attachment.message_id))
            .where(Message.ticket_id == ticket_id).order_by(col(Attachment.id)))
    found: dict[int, list[Attachment]] = {}
    for a in session.exec(stmt).all():
        found.setdefault(a.message_id, []).append(a)
    return found


def _classify(messages: list[Message], events: list[Event], directory: Directory,
              held: dict[int | None, str]) -> list[Shown]:
    """What each message is. An internal mail from an agent is their own (commands, a
    note); from anyone else the pipeline filed it internal and recorded why in the
    history, in the same transaction, with the sender as actor: the earliest unused
    such event names the kind."""
    filing = [e for e in events if e.kind in AUTOMATIC_KINDS or e.kind == STRANGER_KIND]
    shown = []
    for m in messages:
        if m.direction == "out":
            shown.append(_outgoing(m, held.get(m.id)))
        elif not m.internal:
            shown.append(Shown(m, "customer", "Customer mail", False))
        elif m.threaded_by.startswith(new_ticket.REPORTED):  # an internal ticket's first
            shown.append(Shown(m, "note", "Reported by an agent", True))
        elif directory.by_address(m.from_addr) is not None or m.route in ("cli", "web"):
            note = m.route in ("cli", "web") or split(m.body_text).has("note")
            # an agent's mail that was no note went to the customer as our reply (an
            # "out" message of its own): the mail as received is folded away
            shown.append(Shown(m, "note", "Internal note", True) if note else
                         Shown(m, "agent", "Agent's mail as received", True, folded=True))
        else:
            shown.append(_filed(m, filing))
    return shown


def _outgoing(m: Message, review: str | None) -> Shown:
    if not m.internal:
        return Shown(m, "reply", f"Reply to the customer by {m.from_name}", False)
    state = {"rejected": "not sent: review rejected",
             "withdrawn": "not sent: review withdrawn"}.get(review or "", "held for review")
    return Shown(m, "held", f"Reply by {m.from_name}, {state}", True)


def _filed(m: Message, filing: list[Event]) -> Shown:
    actor = m.from_addr or "unknown"
    for e in filing:
        if e.actor == actor and e.at >= m.created_at - timedelta(seconds=5):
            filing.remove(e)
            if e.kind in AUTOMATIC_KINDS:
                return Shown(m, "automatic", f"Internal: {AUTOMATIC_KINDS[e.kind]}", True,
                             folded=True)
            return Shown(m, "stranger", "Internal: from someone not on the conversation", True)
    return Shown(m, "automatic", "Internal mail", True, folded=True)


def _sla(session: Session, settings: Settings, ticket: Ticket) -> list[dict[str, str]]:
    now = clock.now()
    out = []
    for c in clocks(session, SlaContext(settings), ticket):
        due = c.due_at
        if c.met_at is not None:
            late = due is not None and due <= c.met_at
            state = f"met {ago(now - c.met_at)}" + (" (late)" if late else "")
        elif due is None:
            state = "paused (the ticket is waiting or done)"
        elif due <= now:
            state = f"breached {ago(now - due)}"
        else:
            state = f"due in {words(due - now)}"
        out.append({"label": LABELS[c.kind], "state": state,
                    "due": stamp(due) if due else "", "due_iso": due.isoformat() if due else "",
                    "breached": "yes" if c.breached(now) else ""})
    return out


def words(span: timedelta) -> str:
    """A span in the two largest units: "3 days 4 hours", "12 minutes"."""
    seconds = max(int(span.total_seconds()), 0)
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n} {unit}{'' if n == 1 else 's'}")
    return " ".join(parts[:2]) or "less than a minute"


def ago(span: timedelta) -> str:
    text = words(span)
    return "just now" if text == "less than a minute" else f"{text} ago"


def stamp(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""


# -- routes ---------------------------------------------------------------------------

def not_found(request: Request) -> Response:
    return pages.message(request, "Not found", "There is no such ticket, or it is in a "
                         "queue you do not work.", 404)


@auth.signed_in()
async def ticket_page(request: Request, who: auth.SignedIn) -> Response:
    return await respond(request, who, access.path_number(request))


async def respond(request: Request, who: auth.SignedIn, number: int,
                  extra: dict[str, Any] | None = None, status: int = 200) -> Response:
    """The ticket page as it is now; `extra` adds to what the action forms show (errors,
    the agent's kept text, a stale form's changes, the reply box in focus)."""
    web: WebContext = request.app.state.web
    view = await run_in_threadpool(_view, web, who, number)
    if view is None:
        return not_found(request)
    formatted = _int_param(request, "formatted")
    images = request.query_params.get("images") == "1"
    return pages.page(request, "ticket", {
        **view.forms, **(extra or {}), "view": view, "ticket": view.ticket,
        "title": f"{view.public_id} {view.ticket.subject}",
        "prefix": web.settings.helpdesk.ticket_prefix, "stamp": stamp,
        "formatted": formatted, "images": images,
        "reply_filter": request.query_params.get("replies", "")[:100],  # canned replies
    }, status, HEADERS)


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() and len(value) < 19 else None


def _message(web: WebContext, who: auth.SignedIn, number: int,
             message_id: int) -> Message | None:
    with session_scope(web.engine) as session:
        if access.visible_ticket(session, web.settings, who, number) is None:
            return None
        m = session.get(Message, message_id)
        return m if m is not None and m.ticket_id == number else None


def _html_of(web: WebContext, m: Message) -> str:
    """The mail's HTML as sent, from the stored raw mail (ticket_html sanitises it with
    its own allow-list, which keeps harmless inline styles); the stored body_html (already
    sanitised, styles dropped) when the raw mail is not on this machine."""
    if not m.raw_path or not m.body_html:
        return m.body_html  # no HTML part: parse() stores one whenever the mail has it
    try:
        with session_scope(web.engine) as session:
            raw = blobs.for_session(session, web.settings.data_dir).read(m.raw_path)
        return parse.html_as_sent(raw) or m.body_html
    except TemporaryError:
        return m.body_html


@auth.signed_in()
async def message_html(request: Request, who: auth.SignedIn) -> Response:
    web: WebContext = request.app.state.web
    number, mid = access.path_number(request), access.path_number(request, "mid")
    m = await run_in_threadpool(_message, web, who, number, mid)
    html = await run_in_threadpool(_html_of, web, m) if m is not None else ""
    if not html:
        return not_found(request)
    return ticket_html.html_document(html, images=request.query_params.get("images") == "1")


def _attachment(web: WebContext, who: auth.SignedIn, number: int,
                attachment_id: int) -> Attachment | None:
    with session_scope(web.engine) as session:
        if access.visible_ticket(session, web.settings, who, number) is None:
            return None
        a = session.get(Attachment, attachment_id)
        m = session.get(Message, a.message_id) if a is not None else None
        return a if m is not None and m.ticket_id == number else None


@auth.signed_in()
async def attachment(request: Request, who: auth.SignedIn) -> Response:
    web: WebContext = request.app.state.web
    number, aid = access.path_number(request), access.path_number(request, "aid")
    a = await run_in_threadpool(_attachment, web, who, number, aid)
    if a is None:
        return not_found(request)
    source = await run_in_threadpool(blobs.open_attachment, web.engine, web.settings.data_dir,
                                     a.sha256)
    if source is None:  # a file another daemon wrote before 0016_blobs_pg (docs/scaling.md)
        return pages.message(request, "File not available",
                             "This attachment is not stored on this server.", 503)
    return ticket_html.download(source, a.filename, a.content_type)


ROUTES = [
    Route("/ticket/{number:int}", ticket_page, methods=["GET"]),
    Route("/ticket/{number:int}/message/{mid:int}/html", message_html, methods=["GET"]),
    Route("/ticket/{number:int}/attachment/{aid:int}", attachment, methods=["GET"]),
]
