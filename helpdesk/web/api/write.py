"""The API's writes: a new ticket through the pipeline, and changes to a ticket through
the #command registry, as the desk's forms and agents' mail make them.

New ticket: the request becomes the customer's mail to the helpdesk (RFC 5322, built by
the email package), `spool.put` durably, answered 202 with where to poll. The pipeline
then does to it what it does to any mail: rules, deduplication, the acknowledgement, a
`created` event naming the customer and, in its detail, the API token it came through.
The address must not be an agent's: mail from an agent is how commands arrive, and a
token must not speak as another agent.

Changes: fields (PATCH), reply, note and any command lines (POST .../commands) become an
agent_commands.Reply and go through agents.actions.run_commands as the token's agent,
in one transaction that locks the ticket's row first and compares If-Match with the
ticket's version (store/queries.py ticket_version): 412 when it moved on, so two
clients never overwrite each other silently. Refused commands: 422, nothing applied.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col, select

from helpdesk.agents import actions as agent_actions
from helpdesk.agents import new_ticket, registry
from helpdesk.agents.commands import Reply
from helpdesk.spool import Envelope, Spool
from helpdesk.store import queries
from helpdesk.store.db import session_scope, snapshot_scope
from helpdesk.store.models import Message, msgid_key
from helpdesk.store.models import Ticket as TicketRow
from helpdesk.web import access
from helpdesk.web.api import schemas
from helpdesk.web.api.auth import ApiError
from helpdesk.web.api.read import BASE, etag, ticket_out, visible
from helpdesk.web.api.table import Call, Result


def _route(call: Call) -> str:
    return f"api:{call.caller.who.agent.name}:{call.caller.token_id}"[:100]


def create_ticket(call: Call) -> Result:
    body: schemas.TicketCreate = call.body
    settings = call.web.settings
    if call.web.directory().by_address(body.from_addr) is not None:
        raise ApiError(422, "That address is an agent's: a ticket is made for a customer.")
    if body.from_addr.lower() == settings.helpdesk.address.lower():
        raise ApiError(422, "That address is the helpdesk's own.")
    # who made it, for the history and for a reader of the raw mail
    raw, message_id = new_ticket.request_mail(
        settings, from_name=body.from_name, from_addr=body.from_addr, subject=body.subject,
        text=body.text, made_by=("X-Helpdesk-Api", f"token {call.caller.token_id} of "
                                                   f"{call.caller.who.agent.name}"))
    Spool(settings.data_dir / "spool").put(raw, Envelope(
        route=_route(call), mail_from=body.from_addr, rcpt_tos=(settings.helpdesk.address,)))
    call.web.on_spooled()
    key = msgid_key(message_id)
    return Result(schemas.Accepted(state="queued", message_id=message_id,
                                   poll=f"{BASE}/submissions/{key}"), status=202,
                  headers={"Location": f"{BASE}/submissions/{key}"})


def submission(call: Call) -> Result:
    """Where a created ticket is: waiting in the spool, or stored on a ticket. The key is
    the hash of the Message-ID (as only its creator knows it); stored on a ticket the
    token may not see reads as waiting would not, so it is a 404."""
    with snapshot_scope(call.web.engine) as session:
        number = session.exec(select(Message.ticket_id).where(Message.msgid_key == call.key)
                              .order_by(col(Message.id))).first()
        if number is None:
            return Result(schemas.Submission(state="waiting", ticket_id=None))
        visible(session, call, number)
    return Result(schemas.Submission(state="stored", ticket_id=number))


# -- changes through the registry --------------------------------------------------------

def _apply(call: Call, build: Reply, note: str = "") -> Result:
    number = call.path["number"]
    web, who = call.web, call.caller.who
    with session_scope(web.engine) as session:
        # a write first: SQLite's write lock, PostgreSQL's row lock, before the version
        session.execute(update(TicketRow).where(col(TicketRow.id) == number)
                        .values(updated_at=col(TicketRow.updated_at)))
        ticket = visible(session, call, number)
        current = queries.ticket_version(session, number)
        if call.if_match != current:
            raise ApiError(412, "The ticket changed since you read it: GET it again, "
                           "then decide.", [f"your version {call.if_match}, now {current}"],
                           headers=etag(current))
        if not build.commands and not build.text:
            raise ApiError(422, "Nothing to do.")
        # a ticket named in a command (#merge HD-N, #link HD-N) must be one the token's
        # agent may see, as in the desk
        outcome = agent_actions.run_commands(
            session, web.settings, web.directory(), ticket, who.agent, build,
            may_see=lambda n: access.visible_ticket(session, web.settings, who, n) is not None)
        if outcome.errors:  # raising rolls the transaction back: nothing applied
            raise ApiError(422, "Refused; nothing was applied.", list(outcome.errors))
        if note:
            agent_actions.keep_note(session, web.settings, ticket, who.agent, note,
                                    route=_route(call),
                                    threaded_by=f"the API, by {who.agent.name}")
        session.flush()
        out = ticket_out(session, web, ticket)
    web.on_outbox()
    return Result(schemas.Applied(summary=outcome.summary or "done", ticket=out),
                  headers=etag(out.version))


def update_ticket(call: Call) -> Result:
    body: schemas.TicketUpdate = call.body
    given = [registry.command(name, value) for name, value in (
        ("status", body.status), ("priority", body.priority), ("assign", body.assignee),
        ("category", body.category), ("queue", body.queue)) if value]
    tags = [*body.tags_add, *(f"-{t}" for t in body.tags_remove)]
    if tags:
        given.append(registry.command("tag", " ".join(tags)))
    return _apply(call, Reply(tuple(given)))


def reply(call: Call) -> Result:
    body: schemas.ReplyBody = call.body
    given = (registry.command("close"),) if body.close else ()
    return _apply(call, Reply(given, body.text.strip()))


def note(call: Call) -> Result:
    body: schemas.NoteBody = call.body
    text = body.text.strip()
    return _apply(call, Reply((registry.command("note"),), text), note=text)


def run_commands(call: Call) -> Result:
    body: schemas.CommandsBody = call.body
    parsed = registry.split("\n".join(body.commands))
    if len(parsed.commands) != len(body.commands) or parsed.text:
        raise ApiError(422, "Each line must be one command like `#assign bob`.")
    return _apply(call, Reply(parsed.commands, body.text.strip()), note=body.text.strip()
                  if parsed.has("note") else "")

