"""The daemon migrates at start; on a database already at the newest schema it asks with
one query and never imports alembic (which it would keep in memory for its whole life)."""

from __future__ import annotations

import subprocess
import sys

from alembic.script import ScriptDirectory

from helpdesk.store import db
from tests.conftest import MakeSettings


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
