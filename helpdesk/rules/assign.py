"""Choosing a team member: pure functions the store step calls with data it queried.

The rules say *how* to assign (an AssignRequest naming a team and a strategy);
only the store knows who got the team's last ticket and how many open tickets
each member has. Keeping the choice here, pure and deterministic, lets the
rules stay free of the database and makes fairness testable without one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

STRATEGIES = ("round_robin", "least_loaded")


def pick_round_robin(members: Sequence[str], last_assigned: str | None) -> str:
    """The member after `last_assigned` in `members` order, wrapping around.

    With no previous assignee, or one no longer in the team, the first member.
    """
    if not members:
        raise ValueError("cannot pick from an empty team")
    if last_assigned in members:
        return members[(list(members).index(last_assigned) + 1) % len(members)]
    return members[0]


def pick_least_loaded(members: Sequence[str], open_counts: Mapping[str, int]) -> str:
    """The member with the fewest open tickets; ties go to the earliest in `members`.

    A member missing from `open_counts` has none.
    """
    if not members:
        raise ValueError("cannot pick from an empty team")
    return min(members, key=lambda m: (open_counts.get(m, 0), members.index(m)))


def pick(
    strategy: str,
    members: Sequence[str],
    *,
    last_assigned: str | None = None,
    open_counts: Mapping[str, int] | None = None,
) -> str:
    """Dispatch on the strategy name of an AssignRequest."""
    if strategy == "round_robin":
        return pick_round_robin(members, last_assigned)
    if strategy == "least_loaded":
        return pick_least_loaded(members, open_counts or {})
    raise ValueError(f"unknown assignment strategy {strategy!r} (use {', '.join(STRATEGIES)})")
