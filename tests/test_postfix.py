"""Mail through a real Postfix on loopback into the helpdesk, both ways docs/deployment.md
documents: LMTP to the daemon's listener, and the pipe to `helpdesk ingest` (0 stored,
75 deferred and retried by Postfix, 65 bounced). Each test runs its own Postfix
(tests/postfix.py); the loopback client is kept out of mynetworks so that Postfix
treats it like a client on the internet (the relay_domains line is needed, as in
production)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import smtplib
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpdesk.config import settings as config
from helpdesk.config.settings import Settings
from tests.conftest import MakeSettings, need_server
from tests.helpers import REPO, DaemonThread, all_tickets, free_port, make_mail, wait_until
from tests.postfix import Postfix, unavailable_reason

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

DOC = (REPO / "docs" / "deployment.md").read_text()
PIPE_USER = "nobody"  # Postfix never runs a pipe as root
NOT_MYNETWORKS = {"mynetworks": "192.0.2.1/32"}


def _need_postfix() -> None:
    reason = unavailable_reason()
    need_server(f"Postfix tests need Postfix: {reason}" if reason else None)


@pytest.fixture
def make_postfix() -> Iterator[Callable[..., Postfix]]:
    _need_postfix()
    made: list[Postfix] = []

    def make(main: dict[str, str], services: dict[str, str] | None = None) -> Postfix:
        server = Postfix(main, services)
        made.append(server)
        server.start()
        return server

    yield make
    for server in made:
        server.cleanup()


def _send(server: Postfix, subject: str, body: str = "Help, the printer is on fire.") -> None:
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
        client.sendmail("carol@customer.test", ["support@example.test"],
                        make_mail(subject=subject, body=body).as_bytes())


def _status(server: Postfix, rcpt: str = "support@example.test") -> list[str]:
    return re.findall(rf" to=<{re.escape(rcpt)}>.* status=(\w+)", server.log)


def _doc_transport(section: str) -> str:
    """The transport-map line for the domain in the given docs section, as written."""
    text = DOC.split(section, 1)[1]
    return next(line for line in text.splitlines() if line.startswith("support.example.test "))


# --- LMTP -----------------------------------------------------------------------------


def test_postfix_lmtp_into_the_daemon(make_settings: MakeSettings,
                                      start_daemon: Callable[..., DaemonThread],
                                      make_postfix: Callable[..., Postfix]) -> None:
    settings = make_settings({"smtp": {"lmtp": True}})
    daemon = start_daemon(settings)
    documented = _doc_transport("### LMTP").split()[1]
    assert documented == "lmtp:inet:127.0.0.1:2424"
    server = make_postfix({
        **NOT_MYNETWORKS,
        "relay_domains": "example.test",
        "transport_maps": "inline:{ example.test="
                          f"{documented.replace(':2424', f':{daemon.port}')} }}",
    })
    _send(server, "Through Postfix by LMTP")
    wait_until(lambda: _status(server), 15, what=f"Postfix delivery\n{server.log}")
    assert _status(server) == ["sent"], server.log
    assert f"relay=127.0.0.1[127.0.0.1]:{daemon.port}" in server.log
    assert not server.queued_ids()
    tickets = wait_until(lambda: all_tickets(settings), what="the ticket")
    assert [t["subject"] for t in tickets] == ["Through Postfix by LMTP"]


# --- pipe to `helpdesk ingest` ----------------------------------------------------------


def _pipe_python(user: pwd.struct_passwd) -> tuple[str, str]:
    """(interpreter, PYTHONPATH) that can run helpdesk as `user`. This interpreter
    may live where others can't reach (pyenv under /root); then the system Python of
    the same version with this environment's site-packages on the path."""
    site = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    tried = []
    for python, path in ((sys.executable, str(REPO)),
                         (system, ":".join([str(REPO), *sorted(site)]))):
        try:
            done = subprocess.run([python, "-c", "import helpdesk.commands.core"],
                                  env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin"},
                                  user=user.pw_uid, group=user.pw_gid, extra_groups=[],
                                  capture_output=True, text=True, cwd="/", timeout=60)
        except OSError as err:
            tried.append(f"{python}: {err}")
            continue
        if done.returncode == 0:
            return python, path
        tried.append(f"{python}: {done.stderr.strip()[-300:] or done.returncode}")
    raise RuntimeError(f"no Python can run helpdesk as {user.pw_name}:\n" + "\n".join(tried))


def _pipe_setup(make_settings: MakeSettings, make_postfix: Callable[..., Postfix],
                overrides: dict[str, object]) -> tuple[Postfix, Path, Settings]:
    """A Postfix whose `helpdesk` pipe transport is the docs' master.cf entry; the
    helpdesk config and data_dir live in the Postfix dir, owned by the pipe user."""
    user = pwd.getpwnam(PIPE_USER)
    python, pythonpath = _pipe_python(user)
    entry = re.search(r"^helpdesk  unix .*\n  flags=.*$", DOC, flags=re.M)
    assert entry, "the master.cf entry in docs/deployment.md"
    assert _doc_transport("### Pipe").split()[1] == "helpdesk:"
    limit = re.search(r"^helpdesk_destination_recipient_limit = 1$", DOC, flags=re.M)
    assert limit
    server = make_postfix({
        **NOT_MYNETWORKS,
        "relay_domains": "example.test",
        # the bounce for carol goes nowhere
        "transport_maps": "inline:{ example.test=helpdesk: customer.test=discard: }",
        "helpdesk_destination_recipient_limit": "1",
    })
    home = server.dir / "helpdesk"
    data = home / "data"
    data.mkdir(parents=True)
    os.chown(data, user.pw_uid, user.pw_gid)
    made = make_settings({"helpdesk": {"data_dir": str(data),
                                       "database_url": f"sqlite:///{data / 'helpdesk.db'}"},
                          **overrides})
    cfg = home / "helpdesk.toml"
    shutil.copy(made.source, cfg)  # type: ignore[arg-type]
    master = (entry.group(0).replace("\n", "")
              .replace("user=helpdesk", f"user={PIPE_USER}")
              .replace("/usr/local/bin/helpdesk",
                       f"/usr/bin/env PYTHONPATH={pythonpath} {python} -m helpdesk")
              .replace("/etc/helpdesk/helpdesk.toml", str(cfg)))
    server.postconf("-Me", f"helpdesk/unix = {master}")
    server.reload()
    return server, cfg, config.load(cfg)


def test_postfix_pipe_stores_and_bounces(make_settings: MakeSettings,
                                         make_postfix: Callable[..., Postfix]) -> None:
    server, _, settings = _pipe_setup(make_settings, make_postfix,
                                      {"smtp": {"max_message_size": 4000}})
    _send(server, "Piped by Postfix")
    wait_until(lambda: _status(server), 30, what=f"the pipe delivery\n{server.log}")
    _send(server, "Far too big", body="x" * 76 + ("\n" + "x" * 76) * 80)
    wait_until(lambda: len(_status(server)) == 2, 30, what=f"the bounce\n{server.log}")
    assert _status(server) == ["sent", "bounced"], server.log
    assert "delivered via helpdesk service" in server.log
    assert "exceeds max_message_size 4000" in server.log  # ingest's reason, in the bounce
    assert not server.queued_ids()
    assert [t["subject"] for t in all_tickets(settings)] == ["Piped by Postfix"]


def test_postfix_pipe_defers_while_database_down(make_settings: MakeSettings,
                                                 make_postfix: Callable[..., Postfix]) -> None:
    closed = free_port()
    server, cfg, settings = _pipe_setup(make_settings, make_postfix, {})
    good = cfg.read_text()
    down = f"postgresql+psycopg://postgres@127.0.0.1:{closed}/helpdesk"
    cfg.write_text(good.replace(str(settings.database_url), down))
    assert down in cfg.read_text()

    _send(server, "Stored once the database is back")
    wait_until(lambda: _status(server), 30, what=f"the pipe delivery\n{server.log}")
    assert _status(server) == ["deferred"], server.log  # 75: not bounced
    queued = server.queue()
    assert len(server.queued_ids()) == 1 and "support@example.test" in queued, queued
    assert "storage unavailable" in queued

    cfg.write_text(good)  # the database is back: Postfix's retry stores it
    server.flush()
    wait_until(lambda: "sent" in _status(server), 30, what=f"the retry\n{server.log}")
    assert _status(server) == ["deferred", "sent"], server.log
    assert not server.queued_ids()
    assert [t["subject"] for t in all_tickets(settings)] == ["Stored once the database is back"]
