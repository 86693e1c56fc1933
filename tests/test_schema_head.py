"""The daemon migrates at start; on a database already at the newest schema it asks with
one query and never imports alembic (which it would keep in memory for its whole life).
Processes that migrate one database at the same moment take turns."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from helpdesk.errors import TemporaryError
from helpdesk.store import db
from helpdesk.store.migration_lock import migration_lock
from tests.conftest import MakeSettings
from tests.helpers import wait_until


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
