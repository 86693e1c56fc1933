"""The daemon as a real process, for tests of signals, systemd protocols and scale-out."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpdesk.config.settings import Settings
from tests.helpers import REPO, wait_until

# socket activation needs the socket at fd 3 and LISTEN_PID naming the daemon itself,
# which is only known after fork: this launcher moves the fd, then execs (same pid)
_ACTIVATE = ("import os, sys; os.dup2(int(sys.argv[1]), 3); "
             "os.environ['LISTEN_FDS'] = '1'; os.environ['LISTEN_PID'] = str(os.getpid()); "
             "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])")


class DaemonProc:
    """`python -m helpdesk --config X run`; stdout and stderr go to a log file."""

    def __init__(self, settings: Settings, log_path: Path, installed: Path | None = None
                 ) -> None:
        """`installed`: the `helpdesk` script of an installed copy, run from outside the
        checkout; else the checkout's package under the tests' interpreter."""
        self.settings = settings
        self.log_path = log_path
        self.installed = installed
        self.proc: subprocess.Popen[bytes] | None = None

    def _command(self, listen_fd: int | None) -> tuple[list[str], Path, dict[str, str]]:
        """Command line, working directory and environment of the daemon."""
        args = ["--config", str(self.settings.source), "run"]
        if self.installed is not None:  # nothing of the checkout on its path
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            return [str(self.installed), *args], self.log_path.parent, env
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        if listen_fd is not None:
            return [sys.executable, "-c", _ACTIVATE, str(listen_fd), "-m", "helpdesk", *args], \
                REPO, env
        return [sys.executable, "-m", "helpdesk", *args], REPO, env

    def spawn(self, env: dict[str, str] | None = None, listen_fd: int | None = None
              ) -> DaemonProc:
        cmd, cwd, base_env = self._command(listen_fd)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log,
                                         env={**base_env, **(env or {})}, cwd=cwd,
                                         pass_fds=[listen_fd] if listen_fd is not None else [])
        return self

    def start(self, port: int | None = None, timeout: float = 30.0, **kwargs: Any) -> DaemonProc:
        self.spawn(**kwargs)
        wait_until(lambda: self.answers(port or self.settings.smtp.port), timeout,
                   what="the daemon to answer SMTP")
        return self

    def answers(self, port: int) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=2) as client:
                return client.noop()[0] == 250
        except OSError:
            return False

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait for the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def json_log(self) -> list[dict[str, Any]]:
        """Every line of the log as JSON (raises if a line is not JSON)."""
        return [json.loads(line) for line in self.log().splitlines() if line.strip()]
