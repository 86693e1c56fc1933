"""The examples in docs/deployment.md work: config blocks load, and the Postfix and
Exim pipe commands, run as written, store a mail (exit 0) or reject one (exit 65)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib

import pytest

from helpdesk.config import settings as config
from helpdesk.config.settings import Settings
from tests.conftest import MakeSettings
from tests.helpers import REPO, all_tickets, make_mail

DOC = (REPO / "docs" / "deployment.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC, flags=re.S)


def test_config_examples_load() -> None:
    blocks = _blocks("toml")
    assert len(blocks) >= 3
    names = set()
    for block in blocks:
        settings = config.parse(tomllib.loads(block))
        names.update(m.name for m in settings.imap)
    assert {"m365", "gmail"} <= names
    assert all(m.oauth2_command for m in config.parse(tomllib.loads(blocks[-1])).imap)


def _command(prefix: str, settings: Settings, macros: dict[str, str]) -> list[str]:
    line = next(line for line in DOC.splitlines() if prefix in line)
    words = shlex.split(line.split(prefix, 1)[1])
    assert words[:3] == ["/usr/local/bin/helpdesk", "--config", "/etc/helpdesk/helpdesk.toml"]
    args = [macros.get(w, w) for w in words[3:]]
    return [sys.executable, "-m", "helpdesk", "--config", str(settings.source), *args]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("prefix", "macros"), [
    ("argv=", {"${sender}": "carol@customer.test",
               "${original_recipient}": "support@example.test"}),
    ("command = ", {"$sender_address": "carol@customer.test",
                    "$local_part@$domain": "support@example.test"}),
], ids=["postfix", "exim"])
def test_pipe_commands_as_documented(make_settings: MakeSettings, prefix: str,
                                     macros: dict[str, str]) -> None:
    settings = make_settings()
    cmd = _command(prefix, settings, macros)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(stdin: bytes) -> int:
        return subprocess.run(cmd, input=stdin, capture_output=True, env=env, cwd=REPO,
                              timeout=60).returncode

    assert run(make_mail(subject="Piped in").as_bytes()) == 0
    assert [t["subject"] for t in all_tickets(settings)] == ["Piped in"]
    assert run(b"") == 65  # the MTA bounces it with the reason
