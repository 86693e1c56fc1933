"""The desk's "New ticket": an agent opens one, internal or on behalf of a customer.

Routes are thin (agents/new_ticket.py does the work, as for mail and the shell):
- GET /desk/new: the form, with a nonce of its own (a hidden field).
- POST /desk/new: signed in, CSRF (the desk's middleware), the queue one the agent may
  see (web/access.py), the fields checked as the agent's #commands. Internal: the ticket
  is made in one transaction and the answer is 303 to its page. For a customer: the
  request is spooled as their mail (rules, dedupe, acknowledgement unless unticked)
  and the answer is 303 to /desk/new/sent/KEY, which shows the ticket once stored.
  The nonce makes the Message-ID and the bytes, so a double submit is one ticket.
- GET /desk/new/sent/KEY: where that request is (a GET reads only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from helpdesk.agents import new_ticket
from helpdesk.config.priority import PRIORITIES
from helpdesk.errors import HelpdeskError
from helpdesk.store.db import session_scope, snapshot_scope
from helpdesk.store.models import Message, msgid_key
from helpdesk.web import access, auth, csrf, form_input, pages
from helpdesk.web.context import WebContext
from helpdesk.web.ticket_forms import attachment_cap, body_cap

_KEPT = ("kind", "customer", "customer_name", "subject", "text", "queue", "category",
         "priority", "assign", "ack", "nonce")


@dataclass
class Asked:
    kept: dict[str, str]
    fields: new_ticket.Fields
    errors: list[str]


def _queues(web: WebContext, who: auth.SignedIn) -> list[str]:
    seen = access.visible_queues(web.settings, who)
    return list(seen) if seen is not None else sorted(
        {*web.settings.queue, web.settings.helpdesk.default_queue})


def _form(request: Request, who: auth.SignedIn, kept: dict[str, str], errors: list[str],
          status: int = 200) -> Response:
    web = auth.ctx(request)
    values = {**dict.fromkeys(_KEPT, ""), "kind": "internal", "ack": "yes", "priority": "normal",
              "queue": web.settings.helpdesk.default_queue, **kept}
    values["nonce"] = values.get("nonce") or new_ticket.form_nonce()
    return pages.page(request, "new_ticket", {
        "title": "New ticket", "kept": values, "errors": errors,
        "queues": _queues(web, who), "priorities": list(PRIORITIES),
        "agents": list(web.directory().agents)}, status)


@auth.signed_in()
async def form_page(request: Request, who: auth.SignedIn) -> Response:
    return _form(request, who, {}, [])


def _ask(web: WebContext, who: auth.SignedIn, form: FormData) -> Asked:
    kept = {name: form_input.text(form, name) for name in _KEPT}
    kept["customer"] = kept["customer"].lower()
    errors = [f"The {name} is empty." for name in ("subject", "text") if not kept[name]]
    if len(kept["subject"]) > 300:
        errors.append("The subject is longer than 300 characters.")
    if kept["queue"] not in _queues(web, who):
        errors.append(f"You may not open tickets in the queue {kept['queue']!r}.")
    if kept["priority"] and kept["priority"] not in PRIORITIES:
        errors.append(f"No priority {kept['priority']!r}.")
    if kept["assign"] and web.directory().agent(kept["assign"]) is None:
        errors.append(f"No agent {kept['assign']!r}.")
    if kept["kind"] == "customer":
        why = new_ticket.refuse_customer(web.settings, web.directory(), kept["customer"])
        errors += [f"Customer: {why}."] if why else []
    fields = new_ticket.Fields(kept["queue"], kept["category"][:100], kept["priority"],
                               kept["assign"])
    return Asked(kept, fields, errors)


class _Refused(HelpdeskError):
    def __init__(self, errors: tuple[str, ...]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _internal(web: WebContext, who: auth.SignedIn, asked: Asked, attachments: Any) -> int:
    agent, kept = who.agent, asked.kept
    message_id, when = new_ticket.form_message_id(web.settings, kept["nonce"])
    raw, _ = new_ticket.request_mail(
        web.settings, from_name=agent.shown_name, from_addr=agent.email,
        subject=kept["subject"], text=kept["text"], attachments=attachments,
        message_id=message_id, sent_at=when, made_by=("X-Helpdesk-Opened-By",
                                                      f"{agent.name} (desk)"))
    with session_scope(web.engine) as session:
        ticket, _, errors = new_ticket.open_internal(
            session, web.settings, web.directory(), agent, raw, route="desk",
            fields=asked.fields, how="in the desk")
        if errors:
            raise _Refused(errors)  # rolls the ticket back
        return int(ticket.id or 0)


def _for_customer(web: WebContext, who: auth.SignedIn, asked: Asked, attachments: Any) -> str:
    kept = asked.kept
    message_id, when = new_ticket.form_message_id(web.settings, kept["nonce"])
    new_ticket.spool_for_customer(
        web.settings, who.agent, customer=kept["customer"], name=kept["customer_name"],
        subject=kept["subject"], text=kept["text"], attachments=attachments,
        fields=asked.fields, ack=kept["ack"] == "yes", route=f"desk:{who.agent.name}",
        message_id=message_id, sent_at=when)
    web.on_spooled()
    return msgid_key(message_id)


async def create(request: Request) -> Response:
    who = await auth.require(request)
    web = auth.ctx(request)
    async with request.form(max_files=20, max_fields=30) as form:
        attachments = await form_input.files(form)
        asked = _ask(web, who, form)
    if sum(a.size for a in attachments) > attachment_cap(web):
        asked.errors.append(f"The attachments are too large together: at most "
                            f"{attachment_cap(web) // 1024} KiB.")
    if asked.errors:
        return _form(request, who, asked.kept, asked.errors, 422)
    if asked.kept["kind"] == "customer":
        key = await run_in_threadpool(_for_customer, web, who, asked, attachments)
        return RedirectResponse(f"/desk/new/sent/{key}", status_code=303)
    try:
        number = await run_in_threadpool(_internal, web, who, asked, attachments)
    except _Refused as refused:
        return _form(request, who, asked.kept, list(refused.errors), 422)
    web.on_outbox()  # notifications to the team
    return RedirectResponse(f"/desk/ticket/{number}", status_code=303)


csrf.larger_body(body_cap)(create)


@auth.signed_in()
async def sent(request: Request, who: auth.SignedIn) -> Response:
    """The customer's request once spooled: its ticket when stored (and visible)."""
    web = auth.ctx(request)
    key = str(request.path_params["key"])[:64]

    def find() -> int | None:
        with snapshot_scope(web.engine) as session:
            number = session.exec(select(Message.ticket_id).where(Message.msgid_key == key)
                                  .order_by(col(Message.id))).first()
            if number is None or access.visible_ticket(session, web.settings, who,
                                                       number) is None:
                return None
            return number

    number = await run_in_threadpool(find)
    if number is not None:
        return RedirectResponse(f"/desk/ticket/{number}", status_code=303)
    return pages.page(request, "new_ticket_sent", {"title": "Request received", "key": key})


ROUTES = [
    Route("/new", form_page, methods=["GET"]),
    Route("/new", create, methods=["POST"]),
    Route("/new/sent/{key:str}", sent, methods=["GET"]),
]
