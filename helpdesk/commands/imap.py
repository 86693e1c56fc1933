"""`helpdesk imap check [NAME]`: the first thing an admin runs for an [[imap]] mailbox."""

from __future__ import annotations

import click
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from helpdesk.commands import CliState, pass_state
from helpdesk.config.imap import ImapSection
from helpdesk.ingest.imap import default_state_dir, state_file
from helpdesk.ingest.imap_connect import ImapFault, TokenSource, connect, describe, logout


@click.group("imap")
def imap_group() -> None:
    """IMAP mailboxes ([[imap]] in helpdesk.toml)."""


@imap_group.command("check")
@click.argument("name", required=False)
@pass_state
def check(state: CliState, name: str | None) -> None:
    """Log in, look at the folder, report waiting mails and IDLE; non-zero exit on trouble."""
    entries = _chosen(state.settings.imap, name)
    failed = 0
    for entry in entries:
        try:
            click.echo(f"{entry.name}: OK: {_check_one(entry, state)}")
        except (ImapFault, IMAPClientError, OSError) as err:
            failed += 1
            click.echo(f"{entry.name}: FAILED: {describe(err)}", err=True)
    if failed:
        raise SystemExit(1)


def _chosen(entries: list[ImapSection], name: str | None) -> list[ImapSection]:
    if not entries:
        raise click.ClickException("no [[imap]] mailboxes configured")
    if name is None:
        return entries
    for entry in entries:
        if entry.name == name:
            return [entry]
    have = ", ".join(e.name for e in entries)
    raise click.ClickException(f"no [[imap]] mailbox named {name!r} (configured: {have})")


def _check_one(entry: ImapSection, state: CliState) -> str:
    tokens = TokenSource(entry.oauth2_command) if entry.oauth2_command else None
    client = connect(entry, tokens)
    try:
        return _inspect(client, entry, state)
    finally:
        logout(client)


def _inspect(client: IMAPClient, entry: ImapSection, state: CliState) -> str:
    where = f"{entry.host}:{entry.port} ({entry.security}) as {entry.login_user}"
    if not client.folder_exists(entry.folder):
        folders = ", ".join(sorted(str(f[2]) for f in client.list_folders()))
        raise ImapFault(f"{where}: folder {entry.folder!r} not found (folders: {folders})")
    info = client.select_folder(entry.folder, readonly=True)
    total = int(info.get(b"EXISTS", 0))
    saved = state_file(entry, default_state_dir(state.settings.data_dir)).load()
    last = saved.last_uid if saved.uidvalidity == info.get(b"UIDVALIDITY") else 0
    waiting = len([u for u in client.search(["UID", f"{last + 1}:*"]) if u > last]) if total else 0
    idle = "IDLE offered" if client.has_capability("IDLE") else "no IDLE: polling"
    after = entry.after
    if after == "move":
        exists = "exists" if client.folder_exists(entry.move_to) else "will be created"
        after = f"move to {entry.move_to!r} ({exists})"
    return (f"{where}, folder {entry.folder!r}: {waiting} waiting of {total}; "
            f"{idle}; after storing: {after}")


COMMANDS = [imap_group]
