"""`helpdesk outbox`: the mail the helpdesk sends, by hand (outgoing/outbox_admin.py).

    helpdesk outbox list [--status dead] [--limit N] [--json]
    helpdesk outbox show ID
    helpdesk outbox retry ID... | --all-dead

The daemon mails the admins when it gives a mail up; these say which and why, and send
it again once the cause is fixed. A running daemon sends a queued mail within a second.
"""

from __future__ import annotations

import getpass
import json
import logging
import sys

import click

from helpdesk import logs
from helpdesk.commands import CliState, echo, pass_state, report_requeued
from helpdesk.commands.core import _read_engine, _write_engine
from helpdesk.errors import TemporaryError
from helpdesk.outgoing import outbox_admin
from helpdesk.store.db import session_scope
from helpdesk.store.models import Outbox

log = logging.getLogger("helpdesk.commands.outbox")


@click.group(name="outbox")
def outbox_group() -> None:
    """Outgoing mail: what waits or was given up and why; send a given-up mail again."""


@outbox_group.command(name="list")
@click.option("--status", type=click.Choice(outbox_admin.STATUSES), default=None,
              help="Only mails in this state (dead: given up).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True)
@pass_state
def outbox_list(state: CliState, status: str | None, limit: int, as_json: bool) -> None:
    """The newest mails: id, state, tries, kind, ticket, recipients, subject, last error."""
    try:
        with session_scope(_read_engine(state.settings)) as session:
            found = outbox_admin.entries(session, status, limit)
    except TemporaryError as err:
        raise click.ClickException(str(err)) from None
    prefix = state.settings.helpdesk.ticket_prefix
    if as_json:
        click.echo(json.dumps([{
            "id": e.id, "status": e.status, "kind": e.kind,
            "ticket": f"{prefix}-{e.ticket_id}" if e.ticket_id else None,
            "to": e.rcpt_tos, "subject": e.subject, "attempts": e.attempts,
            "last_error": e.last_error, "created": e.created_at.isoformat(),
            "sent": e.sent_at.isoformat() if e.sent_at else None,
            "next_attempt": e.next_attempt_at.isoformat() if e.status == "queued" else None,
            "size": e.size} for e in found], indent=2))
        return
    for e in found:
        ticket = f"{prefix}-{e.ticket_id}" if e.ticket_id else "-"
        why = f"  ({e.last_error})" if e.last_error and e.status != "sent" else ""
        echo(f"{e.id}\t{e.status}\t{e.attempts} tries\t{e.kind}\t{ticket}\t"
             f"{', '.join(e.rcpt_tos)}\t{e.subject}{why}")


@outbox_group.command(name="show")
@click.argument("row_id", type=int)
@pass_state
def outbox_show(state: CliState, row_id: int) -> None:
    """One mail: its state, the relay's last answer, and the mail as it was sent."""
    try:
        with session_scope(_read_engine(state.settings)) as session:
            row = session.get(Outbox, row_id)
    except TemporaryError as err:
        raise click.ClickException(str(err)) from None
    if row is None:
        raise click.ClickException(f"no outgoing mail {row_id}")
    echo(f"{row.id} ({row.status}, {row.attempts} tries) {row.kind} from {row.mail_from} "
         f"to {', '.join(row.rcpt_tos)}")
    if row.last_error:
        echo(f"last error: {row.last_error}")
    if not row.raw:
        echo("its text was dropped after [outgoing] sent_text_kept")
        return
    echo()
    sys.stdout.flush()
    sys.stdout.buffer.write(row.raw)
    sys.stdout.flush()


@outbox_group.command(name="retry")
@click.argument("row_ids", nargs=-1, type=int)
@click.option("--all-dead", is_flag=True, help="Every given-up mail.")
@pass_state
def outbox_retry(state: CliState, row_ids: tuple[int, ...], all_dead: bool) -> None:
    """Send given-up (dead) mails again: each gets one more try."""
    if bool(row_ids) == all_dead:
        raise click.UsageError("name the mails to send again, or give --all-dead")
    settings = state.settings
    try:
        with session_scope(_write_engine(settings)) as session:
            queued = outbox_admin.send_again(session, None if all_dead else row_ids)
    except TemporaryError as err:
        raise click.ClickException(str(err)) from None
    if queued:
        logs.setup(settings)
        log.warning("outbox %s queued again by %s", ", ".join(map(str, queued)),
                    getpass.getuser())
    report_requeued(row_ids, queued, "no given-up mail")


COMMANDS = [outbox_group]
