"""scripts/run and scripts/test set up .venv only when needed: the first time, and
again when what the install reads has changed, not (with a pip upgrade) on every start.

The scripts' decisions are what is tested here, so the Python they drive is a
stand-in that records each call: a real venv and install take minutes (the real
install is exercised by every test run, and by tests/test_packaging.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO

# a stand-in for python3 and for what `-m venv` makes: records its calls, makes the venv
_PYTHON = """#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
if [ "$1 $2" = "-m venv" ]; then
    mkdir -p "$3/bin"
    for tool in python helpdesk ruff; do
        cp "$0" "$3/bin/$tool"
    done
fi
"""


class Checkout:
    """The scripts and the install's inputs, copied; with the stand-in Python."""

    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.copytree(REPO / "scripts", root / "scripts")
        for name in ("pyproject.toml", "setup.py"):
            shutil.copy(REPO / name, root / name)
        python = root / "fake" / "python3"
        python.parent.mkdir()
        python.write_text(_PYTHON)
        python.chmod(0o755)
        self.calls = root / "calls"
        # scripts/test's server check installs nothing when the commands "exist"
        self.env = {**os.environ, "PYTHON": str(python), "CALLS": str(self.calls),
                    "PATH": f"{self._tools()}:{os.environ['PATH']}"}

    def _tools(self) -> Path:
        tools = self.root / "tools"
        tools.mkdir()
        for name in ("dovecot", "postfix", "openssl", "systemd-analyze", "chromium"):
            (tools / name).write_text("#!/bin/sh\n")
            (tools / name).chmod(0o755)
        return tools

    def run(self, script: str) -> list[str]:
        """Run scripts/NAME; the calls it made to Python and the venv's tools."""
        self.calls.write_text("")
        subprocess.run(["sh", f"scripts/{script}"], cwd=self.root, env=self.env, check=True,
                       capture_output=True, timeout=60)
        return self.calls.read_text().splitlines()


def _installs(calls: list[str]) -> list[str]:
    return [c for c in calls if " pip " in f" {c} "]


@pytest.fixture
def checkout(tmp_path: Path) -> Checkout:
    return Checkout(tmp_path / "checkout")


def test_run_sets_up_the_venv_once_then_just_starts(checkout: Checkout) -> None:
    first = checkout.run("run")
    assert "python3 -m venv .venv" in first
    assert any("install" in c and "-e ." in c for c in _installs(first)), first
    assert first[-1] == "helpdesk --config config/helpdesk.toml run"

    second = checkout.run("run")
    assert second == ["helpdesk --config config/helpdesk.toml run"]


def test_run_installs_again_when_pyproject_changes(checkout: Checkout) -> None:
    checkout.run("run")
    pyproject = checkout.root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"click>=8.1"', '"click>=8.1.3"'))

    again = checkout.run("run")
    assert _installs(again) and "python3 -m venv .venv" not in again, again
    assert checkout.run("run") == ["helpdesk --config config/helpdesk.toml run"]


def test_test_installs_the_test_extras_once(checkout: Checkout) -> None:
    checkout.run("run")  # the venv exists, without the test tools

    first = checkout.run("test")
    assert any("-e .[test]" in c for c in _installs(first)), first

    second = checkout.run("test")
    assert _installs(second) == [], second
    assert second[-1].startswith("python -m pytest")
