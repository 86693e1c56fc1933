"""`helpdesk contacts vip|vips|orgs|org`: customers as people and organisations.

    helpdesk contacts vip carol@bigcorp.com [--off] [--as lisa]
    helpdesk contacts vips
    helpdesk contacts orgs                 # every organisation, with its contacts
    helpdesk contacts org bigcorp [--json] # every ticket of its customers
    helpdesk contacts export carol@bigcorp.com --out carol.zip [--internal]

Organisations come from the addresses and [ticket_ops] (store/contacts_ops); the VIP
flag is what the rules' `vip` condition reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from helpdesk.commands import CliState, pass_state
from helpdesk.commands.core import _LIST_ROW, _read_engine, _write_engine
from helpdesk.errors import TemporaryError
from helpdesk.store import contacts_ops
from helpdesk.store import tickets as store
from helpdesk.store.db import session_scope, snapshot_scope


@click.group(name="contacts")
def contacts_group() -> None:
    """Customers: the VIP flag, organisations, and everything kept of one."""


@contacts_group.command(name="vip")
@click.argument("address")
@click.option("--off", is_flag=True, help="Remove the flag.")
@click.option("--as", "acting", default="shell", metavar="NAME",
              help="Who sets it, kept with the flag (default: shell).")
@pass_state
def vip(state: CliState, address: str, off: bool, acting: str) -> None:
    """Flag a customer as VIP (a contact is made for an address not seen yet); rules
    match it with `when.vip = true`."""
    if "@" not in address or len(address) > 320:
        raise click.BadParameter(f"{address!r} is not a mail address", param_hint="ADDRESS")
    with session_scope(_write_engine(state.settings)) as session:
        contact = store.contact_for(session, address.strip())
        changed = contacts_ops.set_vip(session, contact, not off, acting)
    state_text = "no longer VIP" if off else "VIP"
    click.echo(f"{contact.email}: {state_text}" + ("" if changed else " (already)"))


@contacts_group.command(name="vips")
@pass_state
def vips(state: CliState) -> None:
    """The customers flagged VIP."""
    with snapshot_scope(_read_engine(state.settings)) as session:
        for email in contacts_ops.vips(session):
            click.echo(email)


@contacts_group.command(name="orgs")
@pass_state
def orgs(state: CliState) -> None:
    """Every organisation with its number of contacts (free-mail addresses belong to
    none)."""
    with snapshot_scope(_read_engine(state.settings)) as session:
        for name, count in contacts_ops.organisations(session, state.settings).items():
            click.echo(f"{name:<30} {count} contacts")


@contacts_group.command(name="org")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def org(state: CliState, name: str, as_json: bool) -> None:
    """Every ticket (any status) of an organisation's customers, oldest first."""
    from helpdesk.report.present import ticket_summary

    settings = state.settings
    if not contacts_ops.domains_of(settings, name):
        raise click.ClickException(f"no organisation {name!r}: a name from [ticket_ops] "
                                   "organisations, or a mail domain that is not free mail")
    with snapshot_scope(_read_engine(settings)) as session:
        rows = [ticket_summary(session, t, settings.helpdesk.ticket_prefix)
                for t in contacts_ops.tickets_of(session, settings, name)]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    click.echo(_LIST_ROW.format(id="ID", status="STATUS", priority="PRIORITY", queue="QUEUE",
                                assignee="ASSIGNEE", customer="CUSTOMER", subject="SUBJECT"))
    for r in rows:
        click.echo(_LIST_ROW.format(**{**r, "assignee": r["assignee"] or "-",
                                       "customer": r["customer"] or "-"}))


@contacts_group.command(name="export")
@click.argument("address")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The zip file to write.")
@click.option("--internal", is_flag=True,
              help="Include internal notes and agents' mails held for review.")
@pass_state
def export(state: CliState, address: str, out: Path, internal: bool) -> None:
    """Everything kept about one customer, in a zip: their tickets with history and
    messages, their mails on other tickets and their ratings (customer.json), and the
    originals of the mails they sent (mail/HD-N/M.eml)."""
    from helpdesk.report.contact_export import export as write_export

    try:
        with snapshot_scope(_read_engine(state.settings)) as session:
            done = write_export(session, state.settings, address, out, internal)
    except LookupError as err:
        raise click.ClickException(str(err.args[0])) from None
    except TemporaryError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{out}: {done.tickets} tickets, {done.messages} messages, "
               f"{done.originals} original mails")
    for problem in done.missing:
        click.echo(f"not exported: {problem}", err=True)
    if done.missing:
        sys.exit(1)


COMMANDS = [contacts_group]
