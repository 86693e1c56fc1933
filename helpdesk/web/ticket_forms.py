"""What the action forms on a ticket show (templates/web/ticket_actions.html.j2): the
ticket page (web/ticket.py) includes them, and the actions (web/actions.py) answer a
refused form with that same page. Kept apart from both so the page can draw the forms
and the actions can draw the page without importing each other.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from helpdesk.agents import actions as agent_actions
from helpdesk.agents import canned, registry
from helpdesk.agents import commands as agent_commands
from helpdesk.config.agents import Directory
from helpdesk.config.priority import PRIORITIES
from helpdesk.kb import postmortem as kb_postmortem
from helpdesk.store import queries
from helpdesk.store.models import Ticket
from helpdesk.web import auth, csrf, pages, presence
from helpdesk.web.context import WebContext

# our pages run our own script (and it fetches from us); nothing else changes
CSP = pages.SECURITY_HEADERS["Content-Security-Policy"] + "; script-src 'self'; connect-src 'self'"
HEADERS = {"Content-Security-Policy": CSP}
# our script, templates/web/ticket_actions.js, is served as /desk/static/ticket_actions.js
# by web/static.py
# the field controls and the command each one gives, with the ticket attribute it sets
FIELDS = {"assign": "assignee", "status": "status", "priority": "priority",
          "category": "category", "queue": "queue"}
_OWN_FORMS = {*FIELDS, "tag", "note"}  # commands with a form of their own


def attachment_cap(web: WebContext) -> int:
    """Attachments of one reply together: what fits into the largest mail we send
    ([outgoing] max_message_size) once base64 has made it a third larger."""
    return web.settings.outgoing.max_message_size * 3 // 4


def body_cap(web: WebContext) -> int:
    """A form with attachments (reply, note, new ticket): the attachments' room and the
    form's own fields beside them."""
    return web.settings.outgoing.max_message_size + csrf.MAX_BODY


def shown_names(directory: Directory, names: list[str]) -> list[str]:
    return [a.shown_name if (a := directory.agent(n)) else n for n in names]


def form_context(session: Session, web: WebContext, ticket: Ticket,
                 who: auth.SignedIn) -> dict[str, Any]:
    """What templates/web/ticket_actions.html.j2 shows (the ticket page includes it with
    these values; csrf_token comes with every page). The command buttons are those the
    registry offers this agent on this ticket now (#approve only to the lead, with a
    resolution waiting); a command typed by name is still checked by the registry."""
    directory = web.directory()
    number = int(ticket.id or 0)
    sit = agent_actions.situation(session, web.settings, directory, ticket, who.agent)
    return {
        "ticket": ticket,
        "version": queries.ticket_version(session, number),
        "agents": list(directory.agents),
        "statuses": list(agent_commands.STATUSES),
        "priorities": list(PRIORITIES),
        "queues": sorted({*web.settings.queue, web.settings.helpdesk.default_queue,
                          ticket.queue}),
        "commands": [c for c in registry.commands()
                     if c.name not in _OWN_FORMS and c.offered(sit)],
        "replying": shown_names(directory, presence.replying(session, number, who.agent.name)),
        "heartbeat": presence.HEARTBEAT,
        "kb": kb_postmortem.ticket_box(session, web.settings, ticket),  # articles, post-mortem
        "canned": canned.available(web.settings),  # the reply box offers them (#reply)
    }
