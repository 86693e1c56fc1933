"""`helpdesk run` imports only what the daemon uses (issue #18: the whole daemon under
150 MiB): not the other commands' modules, not the IMAP client without an [[imap]]
mailbox; any other command still finds every command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpdesk import malloc

REPO = Path(__file__).resolve().parent.parent

# what main() does before click dispatches, then the daemon's own imports
PROBE = """
import json, sys
import helpdesk.__main__ as cli
from helpdesk.commands import core
cli.cli.add_command(core.run)
assert cli.cli.get_command(None, sys.argv[1]) is not None
import helpdesk.daemon
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(command: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, command], cwd=REPO, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return set(json.loads(out))


def test_run_leaves_the_other_commands_and_the_imap_client_unimported() -> None:
    modules = _modules_after("run")
    unwanted = {m for m in modules if m.split(".")[0] in ("imapclient", "argon2")
                or (m.startswith("helpdesk.commands.") and m != "helpdesk.commands.core")
                or m == "helpdesk.ingest.imap"}
    assert not unwanted, sorted(unwanted)


def test_any_other_command_registers_them_all() -> None:
    modules = _modules_after("tickets")
    assert {"helpdesk.commands.act", "helpdesk.commands.imap",
            "helpdesk.commands.web"} <= modules


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_arenas_are_limited_unless_the_administrator_chose(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert malloc.tune_for_daemon() is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    assert malloc.tune_for_daemon() is libc.startswith("glibc")
