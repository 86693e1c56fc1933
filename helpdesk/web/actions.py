"""The desk's actions on a ticket: a reply box, a note box, controls for the fields and
any other #command, all through the agent command registry exactly as a reply by mail:
each form becomes an agent_commands.Reply and goes through
agent_actions.run_commands, so the customer's mail, the stored outgoing message, the
history events naming the agent and the checks (queues, reviews, leads) are the mail
path's own. Text typed into the reply or note box is split like a mail reply's, so
`#assign me` on its first line works here too.

Every POST: signed in (auth.require), CSRF (the desk's middleware), the ticket visible
to the agent (else 404, as a wrong id), and the form's `version` equal to the ticket's
now (else 409: the page with the fresh state and the agent's text kept). Refused
commands answer 422 listing why, text kept; nothing is applied. Success: 303 to the
ticket page.

Collision notice: opening the reply box (GET .../presence without script, or the
script's heartbeat POST) marks the agent as replying (web.presence); GET .../version
says the ticket's version and who is replying, polled by our small script
(templates/web/ticket_actions.js) to show "Alice is replying" and "this ticket
changed". Without script, the forms post as usual and a stale one gets its 409.

The ticket page includes templates/web/ticket_actions.html.j2 with form_context(...)
and answers with HEADERS (its CSP lets our script run); GET .../actions shows the
actions alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from helpdesk.agents import actions as agent_actions
from helpdesk.agents import commands as agent_commands
from helpdesk.agents import registry
from helpdesk.agents.commands import Reply
from helpdesk.mail.mimeparts import Attachment
from helpdesk.store import queries
from helpdesk.store.db import session_scope
from helpdesk.store.models import Event, Message, Ticket
from helpdesk.web import access, auth, csrf, form_input, pages, presence
from helpdesk.web import ticket as ticket_page
from helpdesk.web.context import WebContext
from helpdesk.web.ticket_forms import (
    FIELDS,
    HEADERS,
    attachment_cap,
    body_cap,
    form_context,
    shown_names,
)

_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


# -- what a form asks for -----------------------------------------------------------------

@dataclass
class Asked:
    """One form's request: its version, how to build the reply once the ticket is known,
    and what to give back to the form if refused."""

    version: str
    build: Callable[[Ticket], Reply | str]  # the reply, or why the form cannot be done
    attachments: tuple[Attachment, ...] = ()
    kept: dict[str, str] = field(default_factory=dict)


def _with_time(reply: Reply, form: FormData) -> Reply:
    """The reply and note boxes' "time spent" field: #time, checked by the registry."""
    spent = " ".join(form_input.text(form, "time").split())
    if not spent or reply.has("time"):
        return reply
    return Reply((*reply.commands, registry.command("time", spent)), reply.text)


def _ask_reply(form: FormData, attachments: tuple[Attachment, ...]) -> Asked:
    text = form_input.text(form, "text")
    reply = agent_commands.split(text)
    chosen = form_input.text(form, "canned")
    if chosen and not reply.has("reply"):  # the reply box's canned reply: #reply NAME
        reply = Reply((*reply.commands, registry.command("reply", chosen)), reply.text)
    reply = _with_time(reply, form)
    if form.get("then") == "close" and not reply.has("close"):
        reply = Reply((*reply.commands, registry.command("close")), reply.text)

    def build(ticket: Ticket) -> Reply | str:
        return reply if reply.text or reply.commands else "The reply is empty."
    return Asked(form_input.text(form, "version"), build, attachments,
                 {"reply": text, "canned": chosen, "time": form_input.text(form, "time")})


def _ask_note(form: FormData, attachments: tuple[Attachment, ...]) -> Asked:
    text = form_input.text(form, "text")
    split = agent_commands.split(text)
    note = _with_time(split if split.has("note") else Reply(
        (*split.commands, registry.command("note")), split.text), form)

    def build(ticket: Ticket) -> Reply | str:
        return note if split.text else "The note is empty."
    return Asked(form_input.text(form, "version"), build, attachments,
                 {"note": text, "note_time": form_input.text(form, "time")})


def _ask_fields(form: FormData, attachments: tuple[Attachment, ...]) -> Asked:
    wanted = {name: form_input.text(form, name) for name in FIELDS}
    tags = " ".join(form_input.text(form, "tag").split())

    def build(ticket: Ticket) -> Reply | str:
        # only what the agent changed: a control left as it was is no command (#status
        # open on an open ticket would still make the agent its watcher)
        given = [registry.command(name, value) for name, value in wanted.items()
                 if value and value != getattr(ticket, FIELDS[name])]
        if tags:
            given.append(registry.command("tag", tags))
        return Reply(tuple(given))
    return Asked(form_input.text(form, "version"), build, attachments,
                 {"category": wanted["category"], "tag": tags})


def _ask_command(form: FormData, attachments: tuple[Attachment, ...]) -> Asked:
    name = form_input.text(form, "command").lstrip("#")
    arg = " ".join(form_input.text(form, "arg").split())
    text = form_input.text(form, "text")

    def build(ticket: Ticket) -> Reply | str:
        if not name:
            return "Choose a command."
        # the registry decides: an unknown name is refused by its check, by name
        return Reply((registry.command(name, arg),), text)
    return Asked(form_input.text(form, "version"), build, attachments,
                 {"command": name, f"arg_{name}": arg, "text": text})


# -- carrying it out ----------------------------------------------------------------------

@dataclass
class Answer:
    status: int  # 303 done, 404, 409 stale, 422 refused
    context: dict[str, Any] = field(default_factory=dict)


def _carry_out(web: WebContext, who: auth.SignedIn, number: int, asked: Asked) -> Answer:
    """Check and apply in one transaction, the ticket's row held so two agents' forms
    drawn from the same version cannot both pass the version check."""
    with session_scope(web.engine) as session:
        # a write first: SQLite takes its write lock, PostgreSQL the row's lock, before
        # the version is read
        session.execute(update(Ticket).where(col(Ticket.id) == number)
                        .values(updated_at=col(Ticket.updated_at)))
        ticket = access.visible_ticket(session, web.settings, who, number)
        if ticket is None:
            return Answer(404)
        if asked.version != queries.ticket_version(session, number):
            return Answer(409, _refused(session, ticket, asked, stale=True))
        reply = asked.build(ticket)
        if isinstance(reply, str):
            return Answer(422, _refused(session, ticket, asked, [reply]))
        if not reply.commands and not reply.text:
            return Answer(303)  # nothing changed on the form: nothing to do
        # another ticket a command names (#merge HD-N) is one this agent may see, or none
        outcome = agent_actions.run_commands(
            session, web.settings, web.directory(), ticket, who.agent, reply,
            asked.attachments,
            may_see=lambda n: access.visible_ticket(session, web.settings, who, n) is not None)
        if outcome.errors:
            return Answer(422, _refused(session, ticket, asked, list(outcome.errors)))
        if reply.has("note") and reply.text:  # as from the shell: the note's text kept
            agent_actions.keep_note(session, web.settings, ticket, who.agent, reply.text,
                                    asked.attachments, route="web",
                                    threaded_by=f"the web desk, by {who.agent.name}")
        if reply.text:
            presence.clear(session, number, who.agent.name)
    web.on_outbox()
    return Answer(303)


def _refused(session: Session, ticket: Ticket, asked: Asked, errors: list[str] | None = None,
             stale: bool = False) -> dict[str, Any]:
    """What the ticket page shows beside the ticket as it is now: why nothing was done,
    what the agent typed, and for a stale form what happened since it was drawn."""
    return {"errors": errors or [], "kept": asked.kept, "stale": stale,
            "changes": _changes(session, int(ticket.id or 0), asked.version) if stale else []}


def _changes(session: Session, number: int, since: str) -> list[str]:
    """What was recorded on the ticket after version `since` (the form's), one line each."""
    try:
        last_event, last_message = (int(part) for part in since.split("."))
    except ValueError:  # no version, or not ours: show the latest
        last_event = last_message = -1
    events = session.exec(select(Event).where(Event.ticket_id == number,
                                              col(Event.id) > last_event)
                          .order_by(col(Event.id).desc()).limit(20)).all()
    messages = session.exec(select(Message).where(Message.ticket_id == number,
                                                  col(Message.id) > last_message)
                            .order_by(col(Message.id).desc()).limit(5)).all()
    lines = [f"{e.actor}: {e.kind}" + (f" {e.field} {e.old or '-'} → {e.new}" if e.field
                                       else f" {e.detail}".rstrip()) for e in reversed(events)]
    for m in reversed(messages):
        kind = "note" if m.internal else "mail in" if m.direction == "in" else "reply sent"
        lines.append(f"{kind} from {m.from_name or m.from_addr}: {m.body_text[:300]}")
    return lines


# -- routes -------------------------------------------------------------------------------

def _number(request: Request) -> int:
    number = access.path_number(request)
    if not number:
        raise HTTPException(404)
    return number


async def _post(request: Request, ask: Callable[[FormData, tuple[Attachment, ...]], Asked]
                ) -> Response:
    who = await auth.require(request)
    number = _number(request)
    web = auth.ctx(request)
    async with request.form(max_files=50, max_fields=50) as form:
        attachments = await form_input.files(form)
        asked = ask(form, attachments)
    if sum(a.size for a in attachments) > attachment_cap(web):
        return await _too_large(request, web, who, number, asked)
    answer = await run_in_threadpool(_carry_out, web, who, number, asked)
    if answer.status == 404:
        raise HTTPException(404)
    if answer.status == 303:
        return RedirectResponse(f"/desk/ticket/{number}", status_code=303)
    # refused: the whole ticket page again, fresh, with why and what was typed
    return await ticket_page.respond(request, who, number, answer.context, answer.status)


async def _too_large(request: Request, web: WebContext, who: auth.SignedIn, number: int,
                     asked: Asked) -> Response:
    cap = attachment_cap(web)
    why = (f"The attachments are too large together: at most {cap // 1024} KiB "
           "(a mail larger than that could not be sent).")
    return await ticket_page.respond(request, who, number, {"errors": [why], "kept": asked.kept},
                                     413)


def _fresh(web: WebContext, who: auth.SignedIn, number: int) -> dict[str, Any]:
    """The form's values for the ticket now (404 for a ticket not there or not theirs)."""
    with session_scope(web.engine) as session:
        ticket = access.visible_ticket(session, web.settings, who, number)
        if ticket is None:
            raise HTTPException(404)
        return form_context(session, web, ticket, who)


async def reply(request: Request) -> Response:
    return await _post(request, _ask_reply)


async def note(request: Request) -> Response:
    return await _post(request, _ask_note)


async def fields(request: Request) -> Response:
    return await _post(request, _ask_fields)


async def run_command(request: Request) -> Response:
    return await _post(request, _ask_command)


# uploads: the reply and note boxes take attachments up to attachment_cap
csrf.larger_body(body_cap)(reply)
csrf.larger_body(body_cap)(note)


async def actions_page(request: Request) -> Response:
    """The actions alone (the ticket page includes the same template)."""
    who = await auth.require(request)
    context = await run_in_threadpool(_fresh, auth.ctx(request), who, _number(request))
    return pages.page(request, "ticket_actions_page", context, headers=HEADERS)


async def reply_box(request: Request) -> Response:
    """The reply box opened without script: the agent is replying (for presence.LASTS;
    a mark that expires by itself, not a change to the ticket, so a GET may make it),
    then the ticket page with the box in focus."""
    who = await auth.require(request)
    web = auth.ctx(request)
    await run_in_threadpool(_mark, web, who, _number(request))
    return await ticket_page.respond(request, who, _number(request), {"reply_box": True})


def _mark(web: WebContext, who: auth.SignedIn, number: int) -> None:
    with session_scope(web.engine) as session:
        if access.visible_ticket(session, web.settings, who, number) is None:
            raise HTTPException(404)
        presence.mark(session, number, who.agent.name)


async def heartbeat(request: Request) -> Response:
    """The script's beat while the agent types in the reply box; `gone` when they stop."""
    who = await auth.require(request)
    number = _number(request)
    async with request.form(max_files=0, max_fields=10) as form:
        gone = form.get("state") == "gone"
    await run_in_threadpool(_beat, auth.ctx(request), who, number, gone)
    return await version(request)


def _beat(web: WebContext, who: auth.SignedIn, number: int, gone: bool) -> None:
    with session_scope(web.engine) as session:
        ticket = access.visible_ticket(session, web.settings, who, number)
        if ticket is None:
            raise HTTPException(404)
        if gone:
            presence.clear(session, number, who.agent.name)
        else:
            presence.mark(session, number, who.agent.name)


async def version(request: Request) -> Response:
    """{version, replying: [names]} for the script's poll: has the ticket changed since
    the page was drawn, and who else is replying."""
    who = await auth.require(request)
    state = await run_in_threadpool(_state, auth.ctx(request), who, _number(request))
    return JSONResponse(state, headers=_NO_STORE)


def _state(web: WebContext, who: auth.SignedIn, number: int) -> dict[str, Any]:
    with session_scope(web.engine) as session:
        ticket = access.visible_ticket(session, web.settings, who, number)
        if ticket is None:
            raise HTTPException(404)
        names = presence.replying(session, number, who.agent.name)
        return {"version": queries.ticket_version(session, number),
                "replying": shown_names(web.directory(), names)}


ROUTES = [
    Route("/ticket/{number:int}/actions", actions_page, methods=["GET"]),
    Route("/ticket/{number:int}/reply", reply, methods=["POST"]),
    Route("/ticket/{number:int}/note", note, methods=["POST"]),
    Route("/ticket/{number:int}/fields", fields, methods=["POST"]),
    Route("/ticket/{number:int}/command", run_command, methods=["POST"]),
    Route("/ticket/{number:int}/presence", reply_box, methods=["GET"]),
    Route("/ticket/{number:int}/presence", heartbeat, methods=["POST"]),
    Route("/ticket/{number:int}/version", version, methods=["GET"]),
]
