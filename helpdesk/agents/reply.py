"""Agents' replies: recognise them, and carry out what they say.

A mail is an agent's reply only when it comes from an agent's known address AND
carries proof that we sent that agent something about this ticket: our reply
address signed for that agent, or In-Reply-To a notification we sent them. A From
header is trivially forged; the signed address or our Message-ID is not. With
[agents_auth] require_authentication_results, the receiving server must also
have seen DKIM or SPF pass for the agent's domain. Everything else from an
agent's address is customer mail and runs no command.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlmodel import Session

from helpdesk.agents import actions as agent_actions
from helpdesk.agents import commands as agent_commands
from helpdesk.agents import notify, ops_work
from helpdesk.config.agents import Agent, Directory
from helpdesk.config.settings import Settings
from helpdesk.mail import authres, replytext
from helpdesk.mail.automatic import Automatic
from helpdesk.mail.parse import ParsedMail
from helpdesk.store import search, staff
from helpdesk.store import tickets as store
from helpdesk.store.models import Ticket
from helpdesk.thread import ThreadResult

log = logging.getLogger("helpdesk.agents.reply")


@dataclass(frozen=True)
class AgentMail:
    agent: Agent
    ticket_id: int
    proof: str


def identify(session: Session, settings: Settings, directory: Directory, mail: ParsedMail,
             automatic: Automatic, found: ThreadResult) -> tuple[AgentMail | None, str]:
    """(the agent's reply, "") or (None, why an agent's address did not count);
    `automatic` is autoreply.classify's verdict on the mail."""
    agent = directory.by_address(mail.from_addr)
    if agent is None:
        return None, ""
    if automatic.no_answer:  # an out-of-office answer to a notification must never reach
        # a customer
        return None, f"automatic mail from agent {agent.name}: {automatic.no_answer}"
    ticket_id, proof = _token_proof(session, agent, mail, found)
    if ticket_id is None:
        return None, f"from agent {agent.name} but without a valid agent token"
    auth = settings.agents_auth
    if auth.require_authentication_results:
        domain = mail.from_addr.rpartition("@")[2]
        if not authres.passes(mail.header_all("Authentication-Results"), domain,
                              auth.trusted_authserv_ids):
            return None, f"from agent {agent.name} but no DKIM/SPF pass for {domain}"
    return AgentMail(agent, ticket_id, proof), ""


def _token_proof(session: Session, agent: Agent, mail: ParsedMail,
                 found: ThreadResult) -> tuple[int | None, str]:
    target = found.reply_target
    if target is not None and target.agent is not None:
        if staff.agent_name(session, target.agent) == agent.name:
            return target.ticket, f"agent reply address {target.address}"
        return None, ""  # signed for someone else: a forwarded notification
    ticket_id = staff.notification_ticket(session, agent.name, mail.in_reply_to)
    if ticket_id is not None:
        return ticket_id, "In-Reply-To a notification sent to this agent"
    return None, ""


def handle(session: Session, settings: Settings, directory: Directory, ticket: Ticket,
           who: AgentMail, mail: ParsedMail, raw: bytes, route: str) -> str:
    """Store the agent's mail (internal) and apply it; returns a one-line summary."""
    text = replytext.latest_reply(mail.body_text)
    # #split without a number: the message whose notification this answers
    reply = ops_work.split_target(session, int(ticket.id or 0), who.agent.name,
                                  agent_commands.split(text), list(mail.in_reply_to))
    incoming = store.store_incoming(session, settings.data_dir, ticket, mail, raw, route=route,
                                    threaded_by=who.proof)
    # the agent's own mail (commands, maybe an internal note) is for agents only; the
    # customer gets our rewritten copy, stored as an outgoing message
    incoming.internal, incoming.body_text = True, text
    search.index_message(session, incoming.id)  # the text changed: index what is kept
    agent = who.agent
    outcome = agent_actions.run_commands(session, settings, directory, ticket, agent, reply,
                                         mail.attachments)
    if outcome.errors:
        errors = list(outcome.errors)
        store.event(session, ticket, "command-error", actor=agent.name,
                    detail="; ".join(errors))
        notify.command_error(session, settings, ticket, agent, errors,
                             in_reply_to=mail.message_id)
        return f"commands refused: {'; '.join(errors)}"
    log.info("agent %s on ticket %s: %s", agent.name, ticket.id, outcome.summary)
    return outcome.summary


def check(session: Session, settings: Settings, directory: Directory, ticket: Ticket,
          agent: Agent, reply: agent_commands.Reply) -> agent_commands.Check:
    """The checks an agent's commands pass before they are applied, whichever way they
    came (agent_actions.run_commands makes them, then applies)."""
    situation = agent_actions.situation(session, settings, directory, ticket, agent)
    return agent_commands.check(reply, situation)
