"""A throwaway Dovecot on free loopback ports, for IMAP integration tests and bench/imap.py.

Recipe: ../shared/notes/dovecot.md. Dovecot must be started as root; the mail
itself belongs to the `mail` user (uid 8) because Dovecot won't serve mail as
root. Users live in a passwd-file that Dovecot rereads when it changes, so one
server can hand each test a fresh, empty mailbox (`add_user`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from helpdesk.config.imap import ImapSection

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists()
                                      else None)
PASSWORD = "password"
DOMAIN = "example.test"

_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login{mechanisms}
auth_failure_delay = 0
first_valid_uid = {uid}
mail_location = maildir:{d}/mail/%d/%n/Maildir
mail_fsync = never
imap_idle_notify_interval = {keepalive}
# IDLE learns of new mail by inotify; when the machine's inotify instances run out (many
# test processes, each with its Dovecot and a browser) Dovecot falls back to looking
# every mailbox_idle_check_interval, 30 s by default: longer than the tests wait
mailbox_idle_check_interval = 1 secs
{oauth}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%d/%n
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
"""

# Dovecot's oauth2 passdb: every XOAUTH2 login is checked at the token server
_OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {d}/oauth2.conf
}}
"""
_OAUTH2 = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
"""


def unavailable_reason() -> str | None:
    """Why a Dovecot cannot be started here, or None when it can."""
    if DOVECOT is None:
        return ("dovecot binary not found: install it with "
                "`apt-get install -y dovecot-imapd` (as root)")
    if os.geteuid() != 0:
        return "Dovecot tests must run as root (Dovecot drops to the mail user itself)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Account:
    """One mail user on the test server; `client()` logs in over plain IMAP."""

    server: Dovecot
    username: str
    password: str = PASSWORD

    def client(self) -> IMAPClient:
        c = IMAPClient("127.0.0.1", port=self.server.imap_port, ssl=False, timeout=30)
        c.login(self.username, self.password)
        return c

    def append(self, *raws: bytes, folder: str = "INBOX", flags: tuple[bytes, ...] = ()) -> None:
        with self.client() as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            for start in range(0, len(raws), 500):
                chunk = raws[start:start + 500]
                if len(chunk) == 1:
                    c.append(folder, chunk[0], flags=flags)
                else:
                    c.multiappend(folder, [{"msg": r, "flags": flags} for r in chunk])

    def count(self, folder: str = "INBOX") -> int:
        with self.client() as c:
            if not c.folder_exists(folder):
                return 0
            return int(c.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])

    def flags(self, folder: str = "INBOX") -> list[tuple[bytes, ...]]:
        with self.client() as c:
            c.select_folder(folder, readonly=True)
            uids = c.search()
            data = c.fetch(uids, ["FLAGS"]) if uids else {}
            return [tuple(v[b"FLAGS"]) for _, v in sorted(data.items())]


class Dovecot:
    """Start, stop and restart one Dovecot in its own directory."""

    def __init__(self, keepalive: str = "2 mins", oauth_introspection: str = "") -> None:
        """`oauth_introspection`: an RFC 7662 URL; XOAUTH2 logins are checked there."""
        self.dir = Path(tempfile.mkdtemp(prefix="helpdesk-dovecot-"))
        self.dir.chmod(0o755)  # the mail user must reach its Maildir below
        self.imap_port = free_port()
        self.imaps_port = free_port()
        mail = pwd.getpwnam("mail")
        (self.dir / "mail").mkdir()
        os.chown(self.dir / "mail", mail.pw_uid, mail.pw_gid)
        self._make_cert()
        (self.dir / "users").write_text("")
        oauth = mechanisms = ""
        if oauth_introspection:
            (self.dir / "oauth2.conf").write_text(_OAUTH2.format(url=oauth_introspection))
            oauth = _OAUTH2_PASSDB.format(d=self.dir)
            mechanisms = " xoauth2 oauthbearer"
        (self.dir / "dovecot.conf").write_text(_CONF.format(
            d=self.dir, uid=mail.pw_uid, gid=mail.pw_gid, imap=self.imap_port,
            imaps=self.imaps_port, keepalive=keepalive, password=PASSWORD, oauth=oauth,
            mechanisms=mechanisms))
        self._pid: int | None = None

    @property
    def cert(self) -> Path:
        return self.dir / "cert.pem"

    @property
    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _make_cert(self) -> None:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(self.dir / "key.pem"), "-out", str(self.cert)],
            check=True, capture_output=True)

    def add_user(self, local: str | None = None) -> Account:
        """A new, empty mailbox (the static passdb knows every name)."""
        return Account(self, f"{local or 'u' + uuid.uuid4().hex[:10]}@{DOMAIN}", PASSWORD)

    def start(self) -> None:
        # no pipes: the forked master would keep them open and run() would never return
        with (self.dir / "start.err").open("ab") as err:
            done = subprocess.run([DOVECOT or "dovecot", "-c", str(self.dir / "dovecot.conf")],
                                  stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        if done.returncode:
            raise RuntimeError(f"dovecot failed: {(self.dir / 'start.err').read_text()[-2000:]}")
        pidfile = self.dir / "run" / "master.pid"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # the master creates its pid file before writing it: an empty one means "soon"
            pid = pidfile.read_text().strip() if pidfile.exists() else ""
            if pid and self._accepts(self.imap_port):
                self._pid = int(pid)
                return
            time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start:\n{self.log[-2000:]}")

    def stop(self) -> None:
        if self._pid is None:
            return
        pid, self._pid = self._pid, None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


def make_mail(n: int, tag: str = "t", size: int = 0) -> bytes:
    """A small, unique RFC 5322 mail; `size` pads the body to roughly that many bytes."""
    body = f"Mail number {n}.\r\n" + ("x" * 76 + "\r\n") * (size // 78)
    return (
        f"From: Customer {n} <c{n}@customer.test>\r\n"
        f"To: support@{DOMAIN}\r\n"
        f"Subject: help {tag} {n}\r\n"
        f"Message-ID: <{tag}-{n}-{uuid.uuid4().hex}@customer.test>\r\n"
        "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
        "\r\n" + body
    ).encode()


def imap_entry(account: Account, **overrides: Any) -> ImapSection:
    """An [[imap]] section for the account over plain IMAP on loopback, fast timings."""
    data: dict[str, Any] = {
        "name": "support", "host": "127.0.0.1", "port": account.server.imap_port,
        "security": "none", "username": account.username, "password": account.password,
        "poll_interval": 0.5, "idle_refresh": 30, "backoff_max": 2, "timeout": 10,
    }
    data.update(overrides)
    return ImapSection.model_validate(data)
