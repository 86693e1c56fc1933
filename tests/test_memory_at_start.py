"""Importing the daemon's modules allocates nothing big for a moment (issue #18: the whole
daemon under 150 MiB). An argon2 hash made on import held 64 MiB in every process that
imported the web sign-in (the daemon at start, each CLI command), whether or not anyone
signed in with a password."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROBE = """
import helpdesk.__main__ as cli
cli._register()  # every command module, as `helpdesk run` imports them
import helpdesk.daemon
fields = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0]))
"""


def test_importing_the_daemon_peaks_no_higher_than_it_ends() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    peak_kib, now_kib = map(int, out.split())
    # the imports themselves only grow; a transient allocation shows as peak above now
    assert peak_kib - now_kib < 16 * 1024, f"peak {peak_kib} KiB, after {now_kib} KiB"
