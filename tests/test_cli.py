"""The command line: ingest for MTA pipes, tickets list/show, quarantine, config errors,
and reads that check the schema instead of migrating it."""

from __future__ import annotations

import itertools
import json
import mailbox
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from helpdesk.config.settings import Settings
from helpdesk.spool import Envelope, Spool
from helpdesk.store import db
from tests.conftest import MakeSettings
from tests.helpers import cli_json, engine_for, invoke_cli, make_mail, run_cli, status_rows


def test_ingest_stores_a_mail_from_stdin_and_exits_0(make_settings: MakeSettings) -> None:
    settings = make_settings()
    result = run_cli(settings, "ingest", stdin=make_mail().as_bytes())
    assert result.returncode == 0, result.stderr.decode()
    assert b"stored HD-1" in result.stdout
    tickets = cli_json(settings, "tickets", "list")
    assert [(t["id"], t["subject"], t["status"]) for t in tickets] == [
        ("HD-1", "Printer on fire", "new")]
    assert set(tickets[0]) >= {"id", "subject", "status", "priority", "category", "queue",
                               "assignee", "customer", "created"}
    assert "messages" not in tickets[0]


def test_ingest_reads_files_and_a_maildir(make_settings: MakeSettings, tmp_path: Path) -> None:
    settings = make_settings()
    one = tmp_path / "one.eml"
    one.write_bytes(make_mail(subject="from a file").as_bytes())
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for i in range(3):
        box.add(make_mail(subject=f"from the maildir {i}").as_bytes())
    result = run_cli(settings, "ingest", str(one), str(tmp_path / "Maildir"))
    assert result.returncode == 0, result.stderr.decode()
    subjects = sorted(t["subject"] for t in cli_json(settings, "tickets", "list"))
    assert subjects == ["from a file", "from the maildir 0", "from the maildir 1",
                        "from the maildir 2"]


def test_ingest_exits_65_for_an_empty_or_oversized_mail(make_settings: MakeSettings) -> None:
    settings = make_settings({"smtp": {"max_message_size": 1000}})
    assert run_cli(settings, "ingest", stdin=b"").returncode == 65
    result = run_cli(settings, "ingest", stdin=make_mail(body="x" * 4000).as_bytes())
    assert result.returncode == 65
    assert b"exceeds max_message_size" in result.stderr


def test_ingest_exits_75_when_the_database_is_unreachable(make_settings: MakeSettings) -> None:
    from tests.helpers import free_port

    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    settings = make_settings({"helpdesk": {"database_url": url}})
    result = run_cli(settings, "ingest", stdin=make_mail().as_bytes())
    assert result.returncode == 75
    assert b"unavailable" in result.stderr
    # the MTA keeps the mail; we keep no second copy that could turn up later
    assert list((settings.data_dir / "spool" / "incoming").glob("*")) == []


def test_tickets_show_has_messages_events_and_how_they_threaded(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    run_cli(settings, "ingest", stdin=make_mail(message_id="<m1@customer.test>").as_bytes())
    reply = make_mail(subject="Re: [HD-1] Printer on fire", body="It stopped.")
    run_cli(settings, "ingest", stdin=reply.as_bytes())
    ticket = cli_json(settings, "tickets", "show", "HD-1")
    assert ticket["id"] == "HD-1"
    assert [m["threaded_by"] for m in ticket["messages"]] == ["new", "subject tag [HD-1]"]
    first = ticket["messages"][0]
    assert set(first) >= {"message_id", "direction", "from", "to", "cc", "subject", "body_text",
                          "internal", "threaded_by", "attachments"}
    assert first["message_id"] == "m1@customer.test"
    assert [e["kind"] for e in ticket["events"]] == ["created", "ack", "reply"]
    human = run_cli(settings, "tickets", "show", "hd-1")
    assert b"It stopped." in human.stdout
    missing = run_cli(settings, "tickets", "show", "HD-99")
    assert missing.returncode == 1 and b"no ticket HD-99" in missing.stderr


def test_garbage_is_quarantined_with_a_reason_and_can_be_released(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    result = run_cli(settings, "ingest", stdin=b"\x00\x01\x02 this is not a mail \xff\xfe")
    assert result.returncode == 0, result.stderr.decode()
    assert b"quarantined" in result.stdout
    rows = cli_json(settings, "quarantine", "list")
    assert len(rows) == 1 and rows[0]["reason"].startswith("cannot parse")
    shown = run_cli(settings, "quarantine", "show", str(rows[0]["id"]))
    assert b"this is not a mail" in shown.stdout and b"cannot parse" in shown.stdout
    # released unchanged, it is quarantined again: one bad mail, a clear answer each time
    released = run_cli(settings, "quarantine", "release", str(rows[0]["id"]))
    assert released.returncode == 0, released.stderr.decode()
    assert b"quarantined" in released.stdout
    assert cli_json(settings, "tickets", "list") == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_quarantined_mail_stored_on_another_machine_gets_a_clear_answer(
    make_settings: MakeSettings,
) -> None:
    # a file written on another machine's data_dir (SQLite, or PostgreSQL before
    # 0016_blobs_pg; now PostgreSQL keeps it in the database: tests/test_blobs_pg.py)
    settings = make_settings()
    run_cli(settings, "ingest", stdin=b"\x00 not a mail at all")
    qid = str(cli_json(settings, "quarantine", "list")[0]["id"])
    shutil.rmtree(settings.data_dir / "quarantine")
    for command in ("show", "release"):
        result = run_cli(settings, "quarantine", command, qid)
        err = result.stderr.decode()
        assert result.returncode == 1 and "Traceback" not in err
        assert "is not in" in err and "same data_dir" in err
    assert cli_json(settings, "quarantine", "list")[0]["status"] == "held"


def test_status_counts_the_spool_even_with_the_daemon_stopped(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    assert status_rows(run_cli(settings, "status").stdout.decode())["spool"] == (
        "ok", "0 waiting, 0 set aside")
    assert not (settings.data_dir / "spool").exists()  # a status read creates nothing
    # mail the daemon accepted (250) before it stopped, not yet a ticket
    Spool(settings.data_dir / "spool").put(bytes(make_mail()), Envelope(route="smtp"))
    result = run_cli(settings, "status")
    out = result.stdout.decode()
    rows = status_rows(out)
    assert rows["daemon"] == ("UNKNOWN", "no status written yet (not running?)"), out
    assert rows["spool"] == ("ok", "1 waiting, 0 set aside")
    assert rows["rules"] == ("ok", "")
    assert "{" not in out  # a table for a person, not a Python dict
    assert "needs attention:\n  daemon: no status written yet (not running?)" in out
    assert result.returncode == 1
    shown = run_cli(settings, "status", "--json")
    assert json.loads(shown.stdout)["spool"] == {"waiting": 1, "set_aside": 0}


def test_an_invalid_config_stops_with_one_line_naming_file_key_and_problem(
    tmp_path: Path,
) -> None:
    path = tmp_path / "helpdesk.toml"
    path.write_text('[smtp]\nport = "twenty-five"\n')
    settings_like = Settings(source=path)
    result = run_cli(settings_like, "tickets", "list")
    assert result.returncode == 1
    err = result.stderr.decode().strip()
    assert len(err.splitlines()) == 1
    assert str(path) in err and "smtp.port" in err and "twenty-five" in err


def test_an_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "helpdesk.toml"
    path.write_text('[helpdesk]\nadress = "typo@example.test"\n')
    result = run_cli(Settings(source=path), "run")
    assert result.returncode == 1
    assert "helpdesk.adress: unknown key" in result.stderr.decode()


def test_secrets_and_the_database_may_come_from_the_environment(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings()
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    env = {"HELPDESK_DATABASE_URL": url, "HELPDESK_SECRET": "from-env"}
    result = run_cli(settings, "ingest", stdin=make_mail().as_bytes(), env=env)
    assert result.returncode == 0
    assert (tmp_path / "elsewhere.db").exists()
    out = run_cli(settings, "tickets", "list", "--json", env=env)
    assert json.loads(out.stdout)[0]["id"] == "HD-1"


def test_helpdesk_config_env_var_selects_the_file(make_settings: MakeSettings) -> None:
    import os
    import subprocess
    import sys

    from tests.helpers import REPO

    settings = make_settings()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HELPDESK_CONFIG": str(settings.source)}
    result = subprocess.run([sys.executable, "-m", "helpdesk", "db", "upgrade"], env=env,
                            capture_output=True, cwd=REPO)
    assert result.returncode == 0, result.stderr.decode()
    assert Path(settings.database_url.split("///", 1)[-1]).exists() or "postgresql" in \
        settings.database_url


def _revision(settings: Settings) -> str | None:
    """The schema revision in the database; None when there is no schema (or no file)."""
    url = settings.database_url
    if url.startswith("sqlite") and not Path(url.split("///", 1)[-1]).exists():
        return None
    with engine_for(settings).connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


READS = [("tickets", "list"), ("tickets", "show", "HD-1"), ("quarantine", "list"), ("stats",),
         ("jobs", "timers"), ("status",)]


def test_reads_neither_create_nor_migrate_the_schema_but_say_what_to_run(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    fresh = run_cli(settings, "tickets", "list")
    assert fresh.returncode == 1
    assert b"run `helpdesk db upgrade`" in fresh.stderr or \
        b"create it with `helpdesk db upgrade`" in fresh.stderr, fresh.stderr.decode()
    assert _revision(settings) is None

    db.upgrade(settings.database_url, "0002_agents")  # as an older helpdesk left it
    for args in READS:
        result = run_cli(settings, *args)
        out = (result.stdout + result.stderr).decode()
        assert result.returncode == 1, (args, out)
        assert "is older than this helpdesk version" in out, (args, out)
        assert "run `helpdesk db upgrade`" in out, (args, out)
    assert _revision(settings) == "0002_agents"

    # writing commands migrate, as the daemon does at start
    assert run_cli(settings, "ingest", stdin=make_mail().as_bytes()).returncode == 0
    assert _revision(settings) != "0002_agents"
    assert [t["id"] for t in cli_json(settings, "tickets", "list")] == ["HD-1"]


def test_a_database_from_a_newer_helpdesk_is_not_read_and_not_touched(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings()
    db.upgrade(settings.database_url)
    with engine_for(settings).begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    result = run_cli(settings, "tickets", "list")
    assert result.returncode == 1
    assert b"newer than this helpdesk version knows" in result.stderr, result.stderr.decode()
    assert b"upgrade helpdesk" in result.stderr
    assert _revision(settings) == "0099_from_the_future"


def test_tickets_list_has_a_header_assignee_and_queue_and_filters(
    make_settings: MakeSettings, tmp_path: Path,
) -> None:
    from tests.agent_desk import write_agents

    write_agents(tmp_path)
    settings = make_settings()
    mails = [make_mail(subject="Printer on fire"),
             make_mail(sender="Dave <dave@other.test>", to="billing@example.test",
                       subject="Invoice wrong"),
             make_mail(subject="Toner empty")]
    for i, mail in enumerate(mails):
        (tmp_path / f"{i}.eml").write_bytes(mail.as_bytes())
    assert run_cli(settings, "ingest", *(str(tmp_path / f"{i}.eml") for i in range(3))
                   ).returncode == 0
    assert invoke_cli(settings, "tickets", "assign", "HD-3", "alice", "--as", "lisa"
                      ).exit_code == 0

    lines = invoke_cli(settings, "tickets", "list").stdout.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "PRIORITY", "QUEUE", "ASSIGNEE", "CUSTOMER",
                                "SUBJECT"]
    assert lines[2].split()[:6] == ["HD-2", "new", "normal", "billing", "-", "dave@other.test"]
    assert lines[3].split()[:6] == ["HD-3", "open", "normal", "support", "alice",
                                    "carol@customer.test"]

    def ids(*filters: str) -> list[str]:
        result = invoke_cli(settings, "tickets", "list", "--json", *filters)
        assert result.exit_code == 0, result.output
        return [t["id"] for t in json.loads(result.stdout)]

    assert ids("--assignee", "alice") == ["HD-3"]
    assert ids("--queue", "billing") == ["HD-2"]
    assert ids("--customer", "CAROL@customer") == ["HD-1", "HD-3"]
    assert ids("--queue", "support", "--assignee", "alice", "--status", "open") == ["HD-3"]

    bogus = invoke_cli(settings, "tickets", "list", "--status", "bogus")
    assert bogus.exit_code == 2 and bogus.stdout == ""
    assert "'bogus' is not one of 'new', 'open', 'pending', 'resolved', 'closed'" in \
        bogus.stderr, bogus.stderr


def test_tickets_show_prints_links_and_no_control_characters_from_the_mail(
    make_settings: MakeSettings, tmp_path: Path,
) -> None:
    from email.message import EmailMessage

    settings = make_settings()
    hostile = make_mail(subject="Hi \x1b]0;pwned\x07 there",
                        body="Look:\x1b[31m red\x1b[0m\r\n\ttabbed\x9b1m \u202eend\n")
    bare = EmailMessage()  # no Message-ID at all
    bare["From"] = "mallory@customer.test"
    bare["To"] = "support@example.test"
    bare["Subject"] = "no id"
    bare.set_content("No Message-ID here.")
    (tmp_path / "hostile.eml").write_bytes(hostile.as_bytes())
    (tmp_path / "bare.eml").write_bytes(bare.as_bytes())
    assert run_cli(settings, "ingest", str(tmp_path / "hostile.eml"),
                   str(tmp_path / "bare.eml")).returncode == 0
    with engine_for(settings).begin() as conn:  # a late reply to a closed ticket did this
        conn.execute(text("UPDATE ticket SET linked_ticket_id = 1 WHERE id = 2"))

    first = invoke_cli(settings, "tickets", "show", "HD-1").stdout
    # the sequences lose their escape character and are shown as harmless text
    assert "Look:[31m red[0m\n\ttabbed1m end" in first
    assert "]0;pwned" in first
    assert not any(c in first for c in "\x1b\x07\x9b\r\u202e"), repr(first)
    assert "followed by HD-2" in first
    second = invoke_cli(settings, "tickets", "show", "HD-2").stdout
    assert "follows    HD-1" in second
    assert "<>" not in second and "Message-ID: (none)" in second
    listed = invoke_cli(settings, "tickets", "list").stdout
    assert "]0;pwned" in listed and not any(c in listed for c in "\x1b\x07"), repr(listed)
    shown = json.loads(invoke_cli(settings, "tickets", "show", "HD-1", "--json").stdout)
    assert "\x1b[31m" in shown["messages"][0]["body_text"]  # JSON keeps the text as it came


def _command_paths(command: Any, path: str = "helpdesk") -> set[str]:
    import click

    if not isinstance(command, click.Group):
        return {path}
    return {p for name, sub in command.commands.items() for p in _command_paths(sub,
                                                                               f"{path} {name}")}


def test_the_readme_command_table_lists_every_command_and_no_other() -> None:
    from helpdesk.__main__ import _register, cli
    from tests.helpers import REPO

    _register()
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Commands", 1)[1].split("\n\n", 2)[1]
    documented = set()
    for row in table.splitlines()[2:]:
        first_cell = row.split(" | ")[0]
        for usage in re.findall(r"`(helpdesk [^`]*)`", first_cell):
            # the words of the command, up to its first argument or option
            words = itertools.takewhile(lambda w: re.fullmatch(r"[a-z][a-z-]*", w),
                                        usage.split())
            documented.add(" ".join(words))
    assert documented == _command_paths(cli)
