"""`helpdesk kb export DIR`, `helpdesk kb import DIR`, `helpdesk kb stats`: the knowledge
base's articles as Markdown files (helpdesk.kb.files), and its figures."""

from __future__ import annotations

import json
from pathlib import Path

import click

from helpdesk.commands import CliState, echo, pass_state
from helpdesk.commands.core import _read_engine, _write_engine
from helpdesk.store.db import session_scope


@click.group(name="kb")
def kb_group() -> None:
    """The knowledge base: export and import articles as Markdown, figures."""


@kb_group.command(name="export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_state
def export(state: CliState, directory: Path) -> None:
    """Write every article into DIRECTORY as NNNN-title.md (made if missing)."""
    from helpdesk.kb import files

    with session_scope(_read_engine(state.settings)) as session:
        written = files.export(session, directory)
    click.echo(f"{len(written)} articles written to {directory}")


@kb_group.command(name="import")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@pass_state
def import_(state: CliState, directory: Path) -> None:
    """Read DIRECTORY's *.md articles: an id the database has is updated, others created.
    A bad file stops the import before anything is stored."""
    from helpdesk.kb import files

    try:
        with session_scope(_write_engine(state.settings)) as session:
            created, updated = files.import_dir(session, state.settings, directory)
    except files.BadArticleFile as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"{created} articles created, {updated} updated")


@kb_group.command(name="stats")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def stats(state: CliState, as_json: bool) -> None:
    """Articles, open post-mortems, and by article the tickets it solved (deflections)
    and its "did this help?" answers."""
    from helpdesk.kb import report

    with session_scope(_read_engine(state.settings)) as session:
        figures = report.figures(session, state.settings)
    if as_json:
        click.echo(json.dumps(figures, indent=2, ensure_ascii=False))
        return
    for line in report.lines(figures, per_article=True):
        echo(line)


COMMANDS = [kb_group]
