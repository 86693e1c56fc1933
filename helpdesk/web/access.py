"""Who may see what on the desk: the one rule every page and action asks.

Leads and admins see every queue; an agent the queues their teams work (agents.toml
teams; a queue's team is config's [queue.NAME] team, else the team named like it,
config.agents.team_of). A ticket is visible when its queue is, and always to its
assignee (a ticket moved to another team's queue stays in "my tickets" until it is
handed over; store.queries.Scope says the same in SQL). A ticket someone may not
see is answered exactly like one that does not exist (a 404 page): the desk tells
nobody which numbers are in use, nor which other teams' queues hold them.
"""

from __future__ import annotations

from sqlmodel import Session
from starlette.requests import Request

from helpdesk.config.agents import team_of
from helpdesk.config.settings import Settings
from helpdesk.store import queries
from helpdesk.store.models import Ticket
from helpdesk.web.auth import SignedIn

MAX_ID = 2**31 - 1  # a larger id is no row (and PostgreSQL would refuse the query)


def sees_all(who: SignedIn) -> bool:
    return who.has_role("lead")


def may_see_queue(settings: Settings, who: SignedIn, queue: str) -> bool:
    return sees_all(who) or team_of(settings, queue) in who.agent.teams


def may_see(settings: Settings, who: SignedIn, ticket: Ticket) -> bool:
    return (bool(ticket.assignee) and ticket.assignee == who.agent.name) or \
        may_see_queue(settings, who, ticket.queue)


def visible_queues(settings: Settings, who: SignedIn) -> tuple[str, ...] | None:
    """The queues `who` may see, sorted; None: all of them (leads and admins).

    Complete without reading the tickets: a queue no config names is worked by the
    team of its name, so it is visible only when that name is one of the agent's
    teams, which are in the list."""
    if sees_all(who):
        return None
    teams = set(who.agent.teams)
    names = {*settings.queue, settings.helpdesk.default_queue, *teams}
    return tuple(sorted(q for q in names if may_see_queue(settings, who, q)))


def scope(settings: Settings, who: SignedIn) -> queries.Scope:
    """This rule for the queries that list tickets (queues, search, the dashboard)."""
    return queries.Scope(who.agent.name, visible_queues(settings, who))


def visible_ticket(session: Session, settings: Settings, who: SignedIn,
                   number: int) -> Ticket | None:
    """The ticket, or None when there is none or `who` may not see it (the same 404)."""
    if not 0 < number <= MAX_ID:
        return None
    ticket = queries.ticket(session, number)
    if ticket is None or not may_see(settings, who, ticket):
        return None
    return ticket


def path_number(request: Request, name: str = "number") -> int:
    """A ticket (or message, attachment) number from the path; one no row can have is
    0, which no query finds: a 404, not a database error."""
    value = int(request.path_params[name])
    return value if 0 < value <= MAX_ID else 0
