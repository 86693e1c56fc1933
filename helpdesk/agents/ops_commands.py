"""The ticket operations as #commands: links and merges, one registered class each.

    #link HD-N      related tickets, shown on both
    #parent HD-N    HD-N is this ticket's parent (resolving it asks about open children)
    #unlink HD-N    remove the links between the two
    #merge HD-N     messages, participants, watchers and history move onto HD-N; this
                    ticket becomes a pointer to it (mail for it lands on HD-N)
    #unmerge [HD-N] (admin, within [ticket_ops] unmerge_window) undo a merge

Registered like agent_commands' (and after them), so mail, the desk's command forms,
`helpdesk tickets ...` and the API all reach them through agent_actions.run_commands.
#reply, #time and #split are agents/ops_work's. The checks read the other ticket
through the Situation's session (read only); the store side is store/ticket_ops.
Every change is a history event naming the agent, on both tickets where two are
concerned.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlmodel import Session

from helpdesk import clock
from helpdesk.agents import notify
from helpdesk.agents.registry import (
    AgentCommand,
    Check,
    Command,
    Reply,
    Situation,
    register,
)
from helpdesk.store import queries, ticket_ops
from helpdesk.store import tickets as store
from helpdesk.store.models import Status, Ticket
from helpdesk.store.ops_models import TicketMerge

if TYPE_CHECKING:
    from helpdesk.agents.actions import Action

_FINAL = (Status.RESOLVED.value, Status.CLOSED.value)


def prefix_of(sit_or_act: Situation | Action) -> str:
    settings = sit_or_act.settings
    return settings.helpdesk.ticket_prefix if settings is not None else "HD"


def ticket_number(arg: str, prefix: str) -> int | None:
    """HD-12, hd-12, #12 or 12 -> 12; anything else None."""
    m = re.fullmatch(rf"(?:{re.escape(prefix)}-|#)?(\d{{1,12}})", arg.strip(), re.IGNORECASE)
    return int(m.group(1)) if m else None


def public(prefix: str, number: int | None) -> str:
    return f"{prefix}-{number}"


class _OtherTicket(AgentCommand):
    """A command naming another ticket, which must exist, differ from this one and not
    be merged away (what would be linked is its survivor: say so, let the agent choose)."""

    argument, usage, max_length = "required", "HD-N", 40

    def other(self, command: Command, sit: Situation, result: Check) -> int | None:
        prefix = prefix_of(sit)
        number = ticket_number(command.arg, prefix)
        session = sit.session
        if number is None:
            result.fail(command, f"not a ticket number (write it as {prefix}-12)")
            return None
        if session is None or queries.ticket(session, number) is None \
                or (sit.may_see is not None and not sit.may_see(number)):
            result.fail(command, f"no ticket {public(prefix, number)}")
            return None
        if number == sit.ticket_id:
            result.fail(command, "that is this ticket")
            return None
        merge = ticket_ops.active_merge(session, number)
        if merge is not None:
            result.fail(command, f"{public(prefix, number)} was merged into "
                                 f"{public(prefix, merge.target_id)}: name that one")
            return None
        result.resolved[self.name] = str(number)
        return number


def _pair_event(act: Action, kind: str, other: int, mine: str, theirs: str) -> None:
    """The same change recorded on this ticket and on the other one, naming the agent."""
    prefix = prefix_of(act)
    act.event(kind, new=public(prefix, other), detail=mine)
    other_ticket = queries.ticket(act.session, other)
    if other_ticket is not None:
        store.event(act.session, other_ticket, kind, actor=act.actor,
                    new=public(prefix, act.ticket.id), detail=theirs)


@register
class Link(_OtherTicket):
    name, summary = "link", "relate to another ticket (shown on both)"

    def check(self, command: Command, sit: Situation, result: Check) -> None:
        self.other(command, sit, result)

    def apply(self, act: Action, given: list[Command]) -> None:
        other = int(act.resolved[self.name])
        if ticket_ops.link_related(act.session, int(act.ticket.id or 0), other, act.actor):
            _pair_event(act, "link", other, "related", "related")


@register
class Parent(_OtherTicket):
    name, summary = "parent", "make HD-N this ticket's parent"

    def check(self, command: Command, sit: Situation, result: Check) -> None:
        number = self.other(command, sit, result)
        if number is None or sit.session is None:
            return
        if sit.ticket_id in ticket_ops.ancestors(sit.session, number):
            result.fail(command, f"{public(prefix_of(sit), number)} is already below this "
                                 "ticket: a ticket cannot be its own ancestor")

    def apply(self, act: Action, given: list[Command]) -> None:
        parent = int(act.resolved[self.name])
        me = int(act.ticket.id or 0)
        before = ticket_ops.set_parent(act.session, me, parent, act.actor)
        if before == parent:
            return
        prefix = prefix_of(act)
        _pair_event(act, "link", parent, "parent", "child")
        if before is not None:
            old = queries.ticket(act.session, before)
            if old is not None:
                store.event(act.session, old, "unlink", actor=act.actor,
                            new=public(prefix, me), detail=f"child, now under "
                            f"{public(prefix, parent)}")


@register
class Unlink(_OtherTicket):
    name, summary = "unlink", "remove the links to another ticket"

    def check(self, command: Command, sit: Situation, result: Check) -> None:
        number = self.other(command, sit, result)
        if number is None or sit.session is None:
            return
        linked = (number in ticket_ops.related_to(sit.session, sit.ticket_id)
                  or ticket_ops.parent_of(sit.session, sit.ticket_id) == number
                  or ticket_ops.parent_of(sit.session, number) == sit.ticket_id)
        if not linked:
            result.fail(command, f"this ticket has no link to {public(prefix_of(sit), number)}")

    def apply(self, act: Action, given: list[Command]) -> None:
        other = int(act.resolved[self.name])
        removed = ticket_ops.unlink(act.session, int(act.ticket.id or 0), other)
        if removed:
            theirs = {"parent": "child", "child": "parent"}
            _pair_event(act, "unlink", other, ", ".join(removed),
                        ", ".join(theirs.get(r, r) for r in removed))


# -- merging -------------------------------------------------------------------------------

_MERGE_OVERRIDES = ("note", "reopen", "status", "close")


@register
class Merge(_OtherTicket):
    name, summary = "merge", "move everything onto HD-N; this ticket points there"
    stage, overrides = "outcome", _MERGE_OVERRIDES

    def check(self, command: Command, sit: Situation, result: Check) -> None:
        if sit.session is not None and ticket_ops.active_merge(sit.session, sit.ticket_id):
            result.fail(command, "this ticket is already merged")
            return
        if sit.review_pending:
            result.fail(command, "a resolution of this ticket waits for review: decide it "
                                 "first")
            return
        self.other(command, sit, result)

    def apply(self, act: Action, given: list[Command]) -> str:
        session, source = act.session, act.ticket
        target = queries.ticket(session, int(act.resolved[self.name]))
        assert target is not None  # checked
        prefix = prefix_of(act)
        row = ticket_ops.merge(session, source, target, act.actor)
        moved = f"{len(row.message_ids)} messages, {len(row.event_ids)} history entries"
        if row.watchers_added:
            moved += f", watchers {', '.join(row.watchers_added)}"
        # the survey step reads the "merged" event: a pointer is never surveyed
        act.event("merged", new=public(prefix, target.id), detail=f"moved: {moved}")
        store.event(session, target, "merged-in", actor=act.actor,
                    new=public(prefix, source.id), detail=f"moved here: {moved}")
        if source.status != Status.CLOSED:
            act.change("status", Status.CLOSED, detail=f"merged into {public(prefix, target.id)}")
            source.closed_at = clock.now()
        return f"merged into {public(prefix, target.id)}"


@register
class Unmerge(AgentCommand):
    name, argument, usage = "unmerge", "optional", "[HD-N]"
    summary, max_length = "(admin) undo a merge of HD-N (or of this ticket)", 40
    stage, overrides = "outcome", _MERGE_OVERRIDES

    def check(self, command: Command, sit: Situation, result: Check) -> None:
        if sit.agent.role != "admin":
            result.fail(command, "only an admin may undo a merge")
            return
        prefix, session = prefix_of(sit), sit.session
        number = ticket_number(command.arg, prefix) if command.arg else sit.ticket_id
        if number is None:
            result.fail(command, f"not a ticket number (write it as {prefix}-12)")
            return
        row = ticket_ops.active_merge(session, number) if session is not None else None
        if row is None or sit.ticket_id not in (row.source_id, row.target_id):
            result.fail(command, f"{public(prefix, number)} is not merged "
                        + ("into this ticket" if number != sit.ticket_id else ""))
            return
        window = sit.settings.ticket_ops.unmerge_window if sit.settings else None
        if window is not None and clock.now() > ticket_ops.undo_deadline(row, window):
            result.fail(command, f"merged on {row.at:%Y-%m-%d %H:%M} UTC: too long ago to "
                                 f"undo ([ticket_ops] unmerge_window = {window})")
            return
        result.resolved[self.name] = str(row.id)

    def apply(self, act: Action, given: list[Command]) -> str:
        session, prefix = act.session, prefix_of(act)
        row = session.get(TicketMerge, int(act.resolved[self.name]))
        assert row is not None  # checked
        moved = ticket_ops.unmerge(session, row, act.actor)
        source = queries.ticket(session, row.source_id)
        target = queries.ticket(session, row.target_id)
        assert source is not None and target is not None
        detail = f"moved back: {moved.messages} messages, {moved.events} history entries"
        store.event(session, source, "unmerged", actor=act.actor,
                    new=public(prefix, target.id), detail=detail)
        store.event(session, target, "unmerged", actor=act.actor,
                    new=public(prefix, source.id), detail=detail)
        before = row.status_before or Status.OPEN
        if store.change(session, source, "status", before, actor=act.actor,
                        detail="merge undone") and before not in _FINAL:
            source.closed_at = None
        return f"{public(prefix, source.id)} no longer merged into {public(prefix, target.id)}"


def refuse_on_pointer(sit: Situation, reply: Reply) -> list[str]:
    """A merged ticket is a pointer: only #unmerge acts on it (a reply from it would
    start a conversation that lands on the survivor anyway)."""
    if sit.session is None or (reply.commands and all(c.name == "unmerge"
                                                      for c in reply.commands)):
        return []
    merge = ticket_ops.active_merge(sit.session, sit.ticket_id)
    if merge is None:
        return []
    return [f"this ticket was merged into {public(prefix_of(sit), merge.target_id)}: act "
            "on that one (an admin may #unmerge it)"]


# -- after every reply ---------------------------------------------------------------------

def after_apply(act: Action, status_before: str, summary: str) -> str:
    """A parent just resolved while children are still open: the agent is asked about
    them (a notification to the agent and the children's assignees, the history, the
    summary for the shell and the desk)."""
    ticket = act.ticket
    if ticket.status not in _FINAL or status_before in _FINAL:
        return summary
    children = ticket_ops.open_children(act.session, int(ticket.id or 0))
    if not children:
        return summary
    prefix = prefix_of(act)
    listed = ", ".join(f"{public(prefix, c.id)} ({c.status})" for c in children)
    act.event("open-children", detail=listed)
    _ask_about_children(act.session, act, children, listed)
    return f"{summary}; still open children: {listed}"


def _ask_about_children(session: Session, act: Action, children: list[Ticket],
                        listed: str) -> None:
    prefix = prefix_of(act)
    text = (f"{public(prefix, act.ticket.id)} is now {act.ticket.status}, but these child "
            f"tickets are still open: {listed}.\n\nResolve them too, or unlink them "
            f"(#unlink {public(prefix, act.ticket.id)} on the child).")
    names = [act.actor, *(c.assignee for c in children if c.assignee)]
    notify.send(session, act.settings, act.directory, act.ticket,
                notify.Notice("open-children", text, author=act.actor), names)
