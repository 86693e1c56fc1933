"""The daemon migrates at start; on a database already at the newest schema it asks with
one query and never imports alembic (which it would keep in memory for its whole life).
Processes that migrate one database at the same moment take turns; a database a newer
helpdesk has migrated is named as such, and the daemon runs on it."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlmodel import select

from helpdesk.errors import TemporaryError
from helpdesk.store import db
from helpdesk.store.migration_lock import migration_lock
from helpdesk.store.models import Message
from tests.conftest import MakeSettings
from tests.helpers import engine_for, make_mail, run_cli, send, wait_until


def test_the_head_read_from_the_scripts_is_alembics() -> None:
    assert db.head_revision() == ScriptDirectory(str(db.MIGRATIONS)).get_current_head()


def _upgrade_in_a_fresh_process(url: str) -> str:
    code = ("import sys; from helpdesk.store import db; db.upgrade(sys.argv[1]); "
            "print('alembic imported' if 'alembic' in sys.modules else 'no alembic')")
    done = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout.strip()


def test_a_current_database_is_not_migrated_and_alembic_stays_out(
        make_settings: MakeSettings) -> None:
    url = make_settings().database_url
    assert _upgrade_in_a_fresh_process(url) == "alembic imported"  # a new database
    assert _upgrade_in_a_fresh_process(url) == "no alembic"  # at head: one query
    engine = db.make_engine(url)
    try:
        assert db.schema_problem(engine) is None
    finally:
        engine.dispose()


# each process imports everything first, says so, then waits for the word to go: the
# migrations start within a millisecond of each other, as two daemons started together do
_RACER = """
import pathlib, sys, time
from helpdesk.store import db
import alembic.command, helpdesk.store.migration_lock
here = pathlib.Path(sys.argv[2])
(here / f"ready-{sys.argv[3]}").touch()
while not (here / "go").exists():
    time.sleep(0.001)
try:
    db.upgrade(sys.argv[1])
    print("migrated")
except Exception as err:
    print(f"failed: {type(err).__name__}: {err}")
"""


def test_processes_migrating_one_new_database_at_once_all_succeed(
        make_settings: MakeSettings, tmp_path: Path) -> None:
    url = make_settings().database_url
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, url, str(tmp_path), str(n)],
                               stdout=subprocess.PIPE, text=True) for n in range(4)]
    wait_until(lambda: all((tmp_path / f"ready-{n}").exists() for n in range(4)),
               timeout=60, what="the processes to be ready")
    (tmp_path / "go").touch()
    outcomes = [r.communicate(timeout=120)[0].strip() for r in racers]
    assert outcomes == ["migrated"] * 4
    engine = db.make_engine(url)
    try:
        assert db.schema_problem(engine) is None
    finally:
        engine.dispose()


def test_a_migration_held_up_by_another_process_says_so(make_settings: MakeSettings) -> None:
    url = make_settings().database_url
    with migration_lock(url):
        started = time.monotonic()
        with pytest.raises(TemporaryError, match="another process has been migrating"), \
                migration_lock(url, wait=0.5):
            pass
        assert time.monotonic() - started >= 0.5
    with migration_lock(url, wait=0.5):  # given back: free again
        pass


def test_a_database_a_newer_helpdesk_migrated_is_named_and_the_daemon_runs_on_it(
        make_settings: MakeSettings, start_daemon: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings()
    db.upgrade(settings.database_url)
    engine = engine_for(settings)
    with engine.begin() as conn:  # what the next release's helpdesk leaves behind
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_next_release'"))
    newer = (f"the database schema (0099_next_release) is newer than this helpdesk version "
             f"knows ({db.head_revision()}); upgrade helpdesk on this machine")

    result = run_cli(settings, "db", "upgrade")
    assert result.returncode == 1
    assert result.stderr.decode().strip() == f"Error: {newer}"

    # a rolling upgrade: this machine's daemon restarts before its helpdesk is upgraded
    with caplog.at_level(logging.WARNING, logger="helpdesk.daemon"):
        daemon = start_daemon(settings)
    assert any(newer in r.getMessage() for r in caplog.records)
    send(daemon.port, make_mail())

    def stored() -> int:
        with db.session_scope(engine) as session:
            return len(session.exec(select(Message)).all())
    wait_until(lambda: stored() == 1, timeout=20, what="the mail stored on the newer schema")
