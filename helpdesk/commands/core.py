"""Core commands: run, ingest, db, tickets, quarantine."""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import mailbox
import sys
from pathlib import Path

import click

from helpdesk import logs
from helpdesk.commands import CliState, echo, pass_state
from helpdesk.config.settings import Settings
from helpdesk.errors import ListenerError, RuleError, TemporaryError
from helpdesk.spool import Envelope, Spool
from helpdesk.store import blobs, db, quarantine_ops, queries
from helpdesk.store.db import session_scope, snapshot_scope
from helpdesk.store.models import Quarantine, Status

EX_OK, EX_DATAERR, EX_TEMPFAIL = 0, 65, 75
log = logging.getLogger("helpdesk.quarantine")


def build_daemon(settings: Settings):  # type: ignore[no-untyped-def]
    from helpdesk.daemon import Daemon

    try:
        return Daemon(settings)
    except RuleError as err:
        raise click.ClickException(f"rules refused, not starting:\n{err}") from None


def _router(settings: Settings):  # type: ignore[no-untyped-def]
    from helpdesk.rules.holder import RulesHolder

    try:
        return RulesHolder.from_settings(settings)
    except RuleError as err:
        click.echo(f"helpdesk: rules refused:\n{err}", err=True)
        sys.exit(EX_TEMPFAIL)


@click.command()
@pass_state
def run(state: CliState) -> None:
    """Run the daemon: SMTP listener, pipeline, outbox (and IMAP, scheduler when configured)."""
    settings = state.settings
    logs.setup(settings)
    from helpdesk import malloc

    malloc.tune_for_daemon()  # before the daemon's threads start (helpdesk/malloc.py)
    daemon = build_daemon(settings)
    try:
        asyncio.run(daemon.serve())
    except ListenerError as err:
        raise click.ClickException(str(err)) from None


@click.command()
@click.argument("sources", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--recipient", "recipients", multiple=True, help="Envelope recipient(s).")
@click.option("--sender", default="", help="Envelope sender.")
@pass_state
def ingest(state: CliState, sources: tuple[Path, ...], recipients: tuple[str, ...],
           sender: str) -> None:
    """Store mail from stdin, files or maildirs (MTA pipe delivery).

    Exit 0 when stored, 75 when storage is unavailable (the MTA retries),
    65 when a mail is rejected.
    """
    settings = state.settings
    logs.setup(settings)
    mails = list(_read_sources(sources))
    worst = EX_OK
    try:
        db.upgrade(settings.database_url)
    except TemporaryError as err:
        click.echo(f"helpdesk ingest: storage unavailable: {err}", err=True)
        sys.exit(EX_TEMPFAIL)
    from helpdesk.pipeline import Pipeline

    spool = Spool(settings.data_dir / "spool")
    pipeline = Pipeline(settings, db.engine_for(settings), spool,
                        router=_router(settings))
    for label, raw in mails:
        code = _ingest_one(settings, spool, pipeline, label, raw, recipients, sender)
        worst = max(worst, code)
    sys.exit(worst)


def _read_sources(sources: tuple[Path, ...]):  # type: ignore[no-untyped-def]
    if not sources:
        yield "stdin", sys.stdin.buffer.read()
        return
    for src in sources:
        if src.is_dir():
            box = mailbox.Maildir(src, factory=None, create=False)
            for key in sorted(box.keys()):
                yield f"{src}/{key}", box.get_bytes(key)
        else:
            yield str(src), src.read_bytes()


def _ingest_one(settings: Settings, spool: Spool, pipeline, label: str, raw: bytes,  # type: ignore[no-untyped-def]
                recipients: tuple[str, ...], sender: str) -> int:
    if not raw.strip():
        click.echo(f"{label}: rejected: empty message", err=True)
        return EX_DATAERR
    if len(raw) > settings.smtp.max_message_size:
        click.echo(f"{label}: rejected: {len(raw)} bytes exceeds max_message_size "
                   f"{settings.smtp.max_message_size}", err=True)
        return EX_DATAERR
    try:
        name = spool.put(raw, Envelope(route="ingest", mail_from=sender,
                                       rcpt_tos=tuple(recipients)))
    except TemporaryError as err:
        click.echo(f"{label}: storage unavailable: {err}", err=True)
        return EX_TEMPFAIL
    entry = spool.claim(name)
    if entry is None:  # a running daemon took it: it is safely in its hands
        click.echo(f"{label}: spooled for the running daemon")
        return EX_OK
    outcome = pipeline.process_entry(entry)
    if outcome.kind == "deferred":
        again = spool.claim(name)
        if again is not None:
            spool.finish(again)  # the MTA keeps the mail and retries; don't keep a copy
        click.echo(f"{label}: storage unavailable: {outcome.detail}", err=True)
        return EX_TEMPFAIL
    click.echo(f"{label}: {outcome.kind} {outcome.ticket} {outcome.detail}".rstrip())
    return EX_OK


@click.group(name="db")
def db_group() -> None:
    """Database schema."""


@db_group.command()
@pass_state
def upgrade(state: CliState) -> None:
    """Apply schema migrations."""
    try:
        db.upgrade(state.settings.database_url)
    except TemporaryError as err:
        raise click.ClickException(str(err)) from None
    click.echo("database is up to date")


@db_group.command(name="migrate-to")
@click.argument("url")
@pass_state
def migrate_to(state: CliState, url: str) -> None:
    """Copy every table to a new, empty database at URL (stop the daemon first); into
    PostgreSQL, the raw mails, attachments and quarantine of data_dir move too."""
    from helpdesk.store.migrate import MigrationRefused, migrate

    try:
        migrate(state.settings.database_url, url,
                progress=lambda c: click.echo(f"{c.table}: {c.rows} {c.unit}"),
                data_dir=state.settings.data_dir)
    except (MigrationRefused, TemporaryError) as err:
        raise click.ClickException(str(err)) from None
    click.echo("done; set database_url (or HELPDESK_DATABASE_URL) to the new URL")


@click.group(name="tickets")
def tickets_group() -> None:
    """Look at tickets, and act on them as an agent."""


@tickets_group.command(name="list")
@click.option("--status", type=click.Choice([s.value for s in Status]), default=None)
@click.option("--assignee", default=None, help="Only this agent's tickets.")
@click.option("--queue", default=None, help="Only this queue's tickets.")
@click.option("--customer", default=None,
              help="Only tickets whose customer's address contains this (any case).")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def tickets_list(state: CliState, status: str | None, assignee: str | None, queue: str | None,
                 customer: str | None, as_json: bool) -> None:
    """Tickets, oldest first."""
    from helpdesk.report.present import ticket_summary

    settings = state.settings
    prefix = settings.helpdesk.ticket_prefix
    with snapshot_scope(_read_engine(settings)) as session:
        found = queries.tickets(session, status, assignee=assignee, queue=queue,
                                customer=customer)
        rows = [ticket_summary(session, t, prefix) for t in found]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    echo(_LIST_ROW.format(id="ID", status="STATUS", priority="PRIORITY", queue="QUEUE",
                          assignee="ASSIGNEE", customer="CUSTOMER", subject="SUBJECT"))
    for r in rows:
        echo(_LIST_ROW.format(**{**r, "assignee": r["assignee"] or "-",
                                 "customer": r["customer"] or "-"}))


_LIST_ROW = ("{id:<10} {status:<9} {priority:<9} {queue:<10} {assignee:<10} {customer:<30} "
             "{subject}")


@tickets_group.command(name="show")
@click.argument("ticket_id")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def tickets_show(state: CliState, ticket_id: str, as_json: bool) -> None:
    """One ticket: its fields, links, SLA clocks, every message, and its history."""
    from helpdesk.report.present import ticket_detail

    settings = state.settings
    number = _ticket_number(ticket_id, settings.helpdesk.ticket_prefix)
    with snapshot_scope(_read_engine(settings)) as session:
        ticket = queries.ticket(session, number)
        if ticket is None:
            raise click.ClickException(f"no ticket {ticket_id}")
        data = ticket_detail(session, ticket, settings.helpdesk.ticket_prefix, settings)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    _print_ticket(data)


def _print_ticket(data: dict) -> None:  # type: ignore[type-arg]
    """Every piece of it may come from a mail, so all of it goes through echo()."""
    echo(f"{data['id']}: {data['subject']}")
    for key in ("status", "priority", "category", "queue", "assignee", "customer", "created"):
        echo(f"  {key:<10} {data[key] or '-'}")
    echo(f"  {'watchers':<10} {', '.join(data['watchers']) or '-'}")
    if data["linked"]:
        echo(f"  {'follows':<10} {data['linked']}")
    if data["followed_by"]:
        echo(f"  {'followed by':<10} {', '.join(data['followed_by'])}")
    for c in data.get("sla", []):
        state = ("BREACHED" if c["breached"] else "met" if c["met"] else
                 "paused" if c["paused"] else "running")
        echo(f"  sla {c['label']:<15} due {c['due'] or '-'}  {state}")
    for m in data["messages"]:
        _print_message(m)
    echo("\nhistory:")
    for e in data["events"]:
        change = f" {e['field']}: {e['old']!r} -> {e['new']!r}" if e["field"] else ""
        echo(f"  {e['at']} {e['actor']} {e['kind']}{change} {e['detail']}".rstrip())


def _print_message(m: dict) -> None:  # type: ignore[type-arg]
    if m["direction"] == "out":
        echo(f"\n--- out ({m['visibility']}) by {m['from_name']} to "
             f"{', '.join([*m['to'], *m['cc']])}")
    else:
        flag = " (internal, agents only)" if m["internal"] else ""
        echo(f"\n--- in{flag} from {m['from']} [{m['threaded_by']}]")
    echo(f"    Message-ID: <{m['message_id']}>" if m["message_id"] else "    Message-ID: (none)")
    for a in m["attachments"]:
        echo(f"    attachment: {a['filename']} ({a['content_type']}, {a['size']} B)")
    echo(m["body_text"])


def _ticket_number(text: str, prefix: str) -> int:
    value = text.strip().upper().removeprefix(prefix.upper() + "-")
    if not value.isdigit():
        raise click.ClickException(f"not a ticket id: {text} (expected {prefix}-N)")
    return int(value)


def _read_engine(settings: Settings):  # type: ignore[no-untyped-def]
    """For commands that only read: refuse a schema this version does not match, never migrate."""
    engine = db.engine_for(settings)
    try:
        problem = db.schema_problem(engine)
    except TemporaryError as err:
        raise click.ClickException(str(err)) from None
    if problem:
        raise click.ClickException(problem)
    return engine


def _write_engine(settings: Settings):  # type: ignore[no-untyped-def]
    """For commands that write: bring the schema up to date first, as the daemon does."""
    try:
        db.upgrade(settings.database_url)
    except TemporaryError as err:
        raise click.ClickException(str(err)) from None
    return db.engine_for(settings)


@click.group(name="quarantine")
def quarantine_group() -> None:
    """Mail that could not be processed, with the reason."""


@quarantine_group.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--all", "include_released", is_flag=True,
              help="Include released and discarded entries.")
@pass_state
def quarantine_list(state: CliState, as_json: bool, include_released: bool) -> None:
    from helpdesk.report.present import quarantine_entry

    with session_scope(_read_engine(state.settings)) as session:
        rows = [quarantine_entry(q) for q in queries.quarantined(session, include_released)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        echo(f"Q{r['id']:<5} {r['created']} {r['status']:<9} {r['size']:>8} B  {r['reason']}")


@quarantine_group.command(name="show")
@click.argument("qid")
@pass_state
def quarantine_show(state: CliState, qid: str) -> None:
    settings = state.settings
    with session_scope(_read_engine(settings)) as session:
        row = session.get(Quarantine, _quarantine_id(qid))
        if row is None:
            raise click.ClickException(f"no quarantine entry {qid}")
        try:
            raw = blobs.for_session(session, settings.data_dir).read(row.raw_path)
        except TemporaryError as err:
            raise click.ClickException(str(err)) from None
    echo(f"Q{row.id} ({row.status}) via {row.route} from {row.mail_from or '-'}")
    echo(f"reason: {row.reason}\n")
    sys.stdout.buffer.write(raw)
    sys.stdout.flush()


@quarantine_group.command(name="release")
@click.argument("qid")
@pass_state
def quarantine_release(state: CliState, qid: str) -> None:
    """Run a quarantined mail through the pipeline again."""
    from helpdesk.pipeline import Pipeline

    settings = state.settings
    engine = _write_engine(settings)
    spool = Spool(settings.data_dir / "spool")
    pipeline = Pipeline(settings, engine, spool, router=_router(settings))
    try:
        name = pipeline.release(_quarantine_id(qid))
    except quarantine_ops.NotHeld as err:
        raise click.ClickException(str(err)) from None
    except TemporaryError as err:
        raise click.ClickException(str(err)) from None
    entry = spool.claim(name)
    if entry is None:
        click.echo(f"Q{_quarantine_id(qid)}: handed to the running daemon")
        return
    outcome = pipeline.process_entry(entry)
    click.echo(f"Q{_quarantine_id(qid)}: {outcome.kind} {outcome.ticket} "
               f"{outcome.detail}".rstrip())


@quarantine_group.command(name="discard")
@click.argument("qid")
@click.option("--reason", default="", help="Why, for the log.")
@pass_state
def quarantine_discard(state: CliState, qid: str, reason: str) -> None:
    """Give up on a quarantined mail: it never becomes a ticket. The entry stays, marked
    discarded (`list --all`), with its raw file, and a log line says who and why."""
    settings = state.settings
    number = _quarantine_id(qid)
    try:
        with session_scope(_write_engine(settings)) as session:
            original = quarantine_ops.discard(session, number)
    except (quarantine_ops.NotHeld, TemporaryError) as err:
        raise click.ClickException(str(err)) from None
    logs.setup(settings)
    why = f": {reason}" if reason else ""
    log.warning("quarantine Q%s discarded by %s%s (quarantined for: %s)", number,
                getpass.getuser(), why, original)
    click.echo(f"Q{number}: discarded")


def _quarantine_id(text: str) -> int:
    value = text.strip().lstrip("Qq")
    if not value.isdigit():
        raise click.ClickException(f"not a quarantine id: {text} (expected Q7 or 7)")
    return int(value)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_state
def status(state: CliState, as_json: bool) -> None:
    """What the running daemon is doing: listener, IMAP mailboxes, rules, spool, outbox,
    quarantine. Exit 1 when something needs attention."""
    from helpdesk.report.status import (
        attention,
        database_figures,
        read_snapshot,
        render,
        rules_figures,
        spool_figures,
        with_backlog,
    )

    settings = state.settings
    snapshot = read_snapshot(settings.data_dir)
    data: dict = {"daemon": snapshot,  # type: ignore[type-arg]
                  "spool": with_backlog(spool_figures(_existing_spool(settings)), snapshot),
                  "rules": rules_figures(settings, snapshot)}
    try:
        data["database"] = database_figures(_read_engine(settings))
    except click.ClickException as err:
        data["database"] = {"error": err.message}
    data["attention"] = attention(data)
    click.echo(json.dumps(data, indent=2) if as_json else render(data))
    sys.exit(1 if data["attention"] else 0)


def _existing_spool(settings: Settings) -> Spool | None:
    root = settings.data_dir / "spool"
    return Spool(root) if root.is_dir() else None  # a status read must not create it


COMMANDS = [run, ingest, db_group, tickets_group, quarantine_group, status]
