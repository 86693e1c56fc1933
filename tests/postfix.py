"""A throwaway Postfix on a free loopback port, for the MTA delivery tests.

Recipe: ../shared/notes/dependencies.md (Postfix). One private instance per test:
its own config_directory, queue_directory and data_directory in a temp dir,
started with `postfix -c DIR start` as root (Postfix drops to the `postfix` user
itself). master.cf is the packaged one with every service unchrooted (the queue
lives in the temp dir) and smtpd moved to the free port; main.cf is written here.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

POSTFIX = shutil.which("postfix") or ("/usr/sbin/postfix" if Path("/usr/sbin/postfix").exists()
                                      else None)
SBIN = Path(POSTFIX).parent if POSTFIX else Path("/usr/sbin")
PACKAGED_MASTER_CF = Path("/etc/postfix/master.cf")


def unavailable_reason() -> str | None:
    """Why a private Postfix cannot be started here, or None when it can."""
    if POSTFIX is None:
        return ("postfix binary not found: install it with `echo 'postfix "
                "postfix/main_mailer_type select No configuration' | debconf-set-selections "
                "&& apt-get install -y postfix` (as root)")
    if os.geteuid() != 0:
        return "Postfix tests must run as root (`postfix start` needs it; it drops privileges)"
    if not PACKAGED_MASTER_CF.exists():
        return f"{PACKAGED_MASTER_CF} is missing (the postfix package installs it)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postfix:
    """One private Postfix: `main` holds extra main.cf lines, `services` extra master.cf
    entries (name/type -> full entry)."""

    def __init__(self, main: dict[str, str], services: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="helpdesk-postfix-"))
        self.dir.chmod(0o755)  # the pipe user must reach files below
        self.conf = self.dir / "etc"
        self.conf.mkdir()
        (self.dir / "queue").mkdir()  # `postfix start` makes the rest (post-install)
        (self.dir / "data").mkdir()
        postfix_user = pwd.getpwnam("postfix")
        os.chown(self.dir / "data", postfix_user.pw_uid, postfix_user.pw_gid)
        self.port = free_port()
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.dir / "queue"),
            "data_directory": str(self.dir / "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "myhostname": "mx.example.test",
            "mydomain": "example.test",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "maillog_file": str(self.dir / "maillog"),
            "maillog_file_prefixes": str(self.dir),
            "smtp_host_lookup": "native",
            "lmtp_host_lookup": "native",
            "smtputf8_enable": "no",
            "biff": "no",
            "in_flow_delay": "0",
            "queue_run_delay": "300s",  # retries happen when the test flushes the queue
            "minimal_backoff_time": "300s",
            "alias_maps": "",
            "alias_database": "",
            **main,
        }
        (self.conf / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        shutil.copy(PACKAGED_MASTER_CF, self.conf / "master.cf")
        self.postconf("-F", "*/*/chroot = n")
        self.postconf("-M#", "smtp/inet")
        self.postconf("-Me", f"127.0.0.1:{self.port}/inet = 127.0.0.1:{self.port} inet n - n - "
                      "- smtpd")
        for name, entry in (services or {}).items():
            self.postconf("-Me", f"{name} = {entry}")
        self._running = False

    def postconf(self, *args: str) -> str:
        done = subprocess.run([str(SBIN / "postconf"), "-c", str(self.conf), *args],
                              capture_output=True, text=True, timeout=30)
        if done.returncode:
            raise RuntimeError(f"postconf {' '.join(args)}: {done.stderr}")
        return done.stdout

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        # no pipes kept open by the forked master: stdout/stderr go to a file
        with (self.dir / "postfix.out").open("a") as out:
            done = subprocess.run([POSTFIX or "postfix", "-c", str(self.conf), *args],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                  timeout=60, text=True)
        return done

    @property
    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        if self._postfix("start").returncode:
            raise RuntimeError(f"postfix start failed:\n{(self.dir / 'postfix.out').read_text()}"
                               f"\n{self.log[-2000:]}")
        self._running = True
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"postfix did not listen on {self.port}:\n{self.log[-2000:]}")

    def reload(self) -> None:
        if self._postfix("reload").returncode:
            raise RuntimeError(f"postfix reload failed:\n{self.log[-2000:]}")

    def queue(self) -> str:
        """`postqueue -p`: 'Mail queue is empty' or one entry per queued mail."""
        return subprocess.run([str(SBIN / "postqueue"), "-c", str(self.conf), "-p"],
                              capture_output=True, text=True, timeout=30).stdout

    def queued_ids(self) -> list[str]:
        return re.findall(r"^([0-9A-F]{6,})[*!]?\s", self.queue(), flags=re.M)

    def flush(self) -> None:
        """`postqueue -f`: retry every deferred mail now."""
        subprocess.run([str(SBIN / "postqueue"), "-c", str(self.conf), "-f"],
                       capture_output=True, timeout=30, check=True)

    def statuses(self) -> list[str]:
        """Every delivery status logged so far, in order ('sent', 'deferred', ...)."""
        return re.findall(r" status=(\w+)", self.log)

    def stop(self) -> None:
        if self._running:
            self._running = False
            if self._postfix("stop").returncode:
                self._postfix("abort")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
