"""The knowledge base's #commands (registered like the built-in ones, so mail, the
shell and the desk's command buttons all have them):

    #kb               draft a KB article from this ticket (the reply's text, else the
                      last reply sent, is the resolution); the reply goes on as usual
    #publish [N]      (lead) publish KB article N, or this ticket's newest draft
    #postmortem       the reply is the ticket's post-mortem (Cause: / Fix: /
                      Prevention:), kept with the ticket, never sent

When an agent's commands resolve a ticket that needs a post-mortem ([kb]
postmortem_priority), `ask_postmortem` mails them the template (agents.actions calls
it after every door's commands): their reply with #postmortem keeps it.

Publishing is the lead's: the check refuses anyone else. A draft still flagged with
personal data is not published; the refusal is recorded in the ticket's history
(checks cannot read the database, so it is found when applied).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from helpdesk.agents import notify
from helpdesk.agents.registry import (
    AgentCommand,
    Check,
    Command,
    Conflict,
    Situation,
    forbid,
    register,
)
from helpdesk.config.agents import Agent, Directory
from helpdesk.config.settings import Settings
from helpdesk.kb import articles, postmortem
from helpdesk.store import tickets as store
from helpdesk.store.kb_models import KbArticle
from helpdesk.store.models import Status, Ticket

if TYPE_CHECKING:
    from sqlmodel import Session

    from helpdesk.agents.actions import Action

_DONE = (Status.RESOLVED, Status.CLOSED)


@register
class DraftArticle(AgentCommand):
    name, summary = "kb", "draft a knowledge-base article from this ticket"

    def apply(self, act: Action, given: list[Command]) -> None:
        names = [n for a in act.directory.agents for n in (a.name, a.shown_name)]
        articles.draft_from_ticket(act.session, act.settings, act.ticket, agent=act.actor,
                                   resolution=act.reply.text, agent_names=names)


@register
class Publish(AgentCommand):
    name, argument = "publish", "optional"
    usage, summary = "[N]", "(lead) publish KB article N (default: this ticket's draft)"
    max_length = 10

    def refuse_argument(self, command: Command) -> str:
        return "" if command.arg.isdigit() else "the article's number, e.g. #publish 12"

    def check(self, command: Command, sit: Situation, result: Check) -> None:
        if not (sit.is_lead or sit.agent.role in ("lead", "admin")):
            result.fail(command, "only a lead may publish KB articles")

    def apply(self, act: Action, given: list[Command]) -> None:
        arg = given[-1].arg
        article = act.session.get(KbArticle, int(arg)) if arg else \
            next(iter(articles.drafts_of(act.session, int(act.ticket.id or 0))), None)
        if article is None:
            act.event("kb-publish-refused",
                      detail=f"no KB article {arg}" if arg else "no draft on this ticket")
            return
        try:
            articles.publish(act.session, article, lead=act.actor)
        except articles.NotPublishable as err:
            act.event("kb-publish-refused", detail=str(err))


@register
class PostMortem(AgentCommand):
    name, summary = "postmortem", "the text is the ticket's post-mortem (not sent)"
    stage, overrides = "outcome", ("note",)

    def apply(self, act: Action, given: list[Command]) -> str:
        parts = postmortem.parse(act.reply.text)
        if not any(parts.values()):  # e.g. the desk's bare command button: the form is
            return "no post-mortem text: nothing kept"  # the way there
        postmortem.keep(act.session, act.ticket, parts, by=act.actor)
        return "post-mortem kept"


forbid(Conflict("postmortem", ("close", "status", "reopen"),
                "#postmortem keeps the text as the post-mortem: send #close or #status "
                "in another reply"))


def ask_postmortem(session: Session, settings: Settings, directory: Directory, ticket: Ticket,
                   agent: Agent, before: str) -> None:
    """`agent` just resolved or closed `ticket` (it was `before`): if it needs a
    post-mortem and has none, ask them for it by mail, once per resolution."""
    if before in _DONE or ticket.status not in _DONE or not postmortem.needs(settings, ticket) \
            or postmortem.of(session, int(ticket.id or 0)) is not None:
        return
    text = ("This ticket needs a short post-mortem. Reply with #postmortem on the first "
            "line and the three parts below it (or use the form on the desk's ticket "
            "page):\n\n#postmortem\n\n" + postmortem.template(settings, ticket))
    notify.send(session, settings, directory, ticket,
                notify.Notice("postmortem", text, author=agent.name,
                              reason=f"{ticket.priority} priority"), [agent.name])
    store.event(session, ticket, "postmortem-asked", detail=f"asked {agent.name}")
