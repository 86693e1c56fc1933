"""Installed as docs/deployment.md says (a wheel in a venv of its own, run from outside
the checkout), the daemon finds its templates and migrations and answers a customer;
the wheel builds without warnings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import MakeSettings
from tests.helpers import REPO, RelaySink, free_port, make_mail, send
from tests.procs import DaemonProc

# how Python prints a warning: `file:line: SomeWarning: message`
_PYTHON_WARNING = re.compile(r"\b\w*Warning: ")


def _not_source(directory: str, names: list[str]) -> set[str]:
    """What a checkout holds besides its sources: at the top the venv, caches, data and
    earlier builds (an in-tree build/ would put files into the wheel that the source
    tree no longer ships); anywhere, bytecode and egg-info."""
    top = Path(directory) == REPO
    return {n for n in names if n == "__pycache__" or n.endswith(".egg-info")
            or (top and (n.startswith(".") or n in ("build", "dist", "data")))}


@dataclass(frozen=True)
class Built:
    wheel: Path
    output: str  # what the build printed (pip -v)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The wheel, built by pip from a copy of the source tree as a user would."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=_not_source)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp / "dist"),
         str(source)], capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    (wheel,) = (tmp / "dist").glob("helpdesk-*.whl")
    return Built(wheel, output)


def install(wheel: Path, where: Path) -> Path:
    """A fresh venv at `where` with the wheel installed; returns its python.

    Only the wheel is installed: the dependencies (installing them from the index
    takes minutes) come from the tests' own environment through a .pth file, which
    adds them after the venv's own site-packages, so `helpdesk` is the installed one."""
    venv.EnvBuilder(with_pip=False).create(where)
    python = where / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                    "--no-deps", "--no-index", "--quiet", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "test-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


def test_wheel_builds_without_warnings(built: Built) -> None:
    warnings = [line.strip() for line in built.output.splitlines()
                if _PYTHON_WARNING.search(line)]
    assert not warnings, "\n".join(warnings)


def test_wheel_carries_what_the_daemon_reads_at_run_time(built: Built) -> None:
    names = set(zipfile.ZipFile(built.wheel).namelist())
    templates = {f"helpdesk/templates/{p.relative_to(REPO / 'templates').as_posix()}"
                 for p in (REPO / "templates").rglob("*") if p.is_file()}
    migrations = {f"helpdesk/{p.relative_to(REPO / 'helpdesk').as_posix()}"
                  for p in (REPO / "helpdesk" / "migrations").rglob("*")
                  if p.is_file() and p.suffix in (".py", ".mako")}
    packages = {p.relative_to(REPO).as_posix() for p in (REPO / "helpdesk").rglob("__init__.py")}
    assert templates and migrations
    assert templates <= names, sorted(templates - names)
    assert migrations <= names, sorted(migrations - names)
    assert packages <= names, sorted(packages - names)
    # nothing lands beside the package in site-packages (as templates/ once would have)
    tops = {n.split("/")[0] for n in names}
    assert all(top == "helpdesk" or top.endswith(".dist-info") for top in tops), tops


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_installed_daemon_acknowledges_a_customer_mail(
        built: Built, tmp_path: Path, make_settings: MakeSettings, relay: RelaySink,
        daemon_procs: Callable[..., DaemonProc]) -> None:
    python = install(built.wheel, tmp_path / "venv")
    where = subprocess.run([python, "-c", "import helpdesk; print(helpdesk.__file__)"],
                           cwd=tmp_path, check=True, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "venv"), where.stdout

    settings = make_settings({
        "smtp": {"port": free_port()},
        "outgoing": {"relay_host": "127.0.0.1", "relay_port": relay.port},
    })
    daemon = daemon_procs(settings, installed=tmp_path / "venv" / "bin" / "helpdesk").start()
    send(settings.smtp.port, make_mail(subject="My printer is on fire"))

    try:
        (ack,) = relay.wait_for(1, timeout=30)
    except AssertionError:
        pytest.fail(f"no acknowledgement reached the relay; the daemon's log:\n{daemon.log()}")
    assert ack.rcpt_tos == ["carol@customer.test"]
    assert "My printer is on fire" in ack.message["Subject"], daemon.log()
    assert "TemplateNotFound" not in daemon.log()
    assert daemon.terminate() == 0, daemon.log()
