"""systemd integration: readiness notification and socket activation.

Both protocols are tiny and stable, so they are written out here instead of pulling
in a library:

- sd_notify: one datagram ("READY=1", "STOPPING=1", ...) to the unix socket named
  by $NOTIFY_SOCKET (a leading "@" means the abstract namespace).
- socket activation: systemd passes listening sockets starting at fd 3, with
  $LISTEN_FDS saying how many and $LISTEN_PID naming the process they are for.

Without systemd (the variables unset) every function here does nothing, so the
daemon runs the same under a terminal, a test, or another supervisor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket

log = logging.getLogger("helpdesk.systemd")
LISTEN_FDS_START = 3


def notify(state: str) -> bool:
    """Send one sd_notify state line; True when a supervisor was there to hear it."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as err:
        # readiness is advisory; a missing listener must not stop mail intake
        log.warning("sd_notify %r to %s failed: %s", state, address, err)
        return False
    return True


def inherited_socket() -> socket.socket | None:
    """The listening socket systemd handed us (the first one), or None.

    The variables are removed once read (as sd_listen_fds(unset=1) does), so a child
    process does not take the socket for its own.
    """
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
        pid = int(os.environ.get("LISTEN_PID", "0"))
    except ValueError:
        return None
    if count < 1 or pid != os.getpid():
        return None
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if count > 1:
        log.warning("systemd passed %d sockets; using the first, closing the rest", count)
        for fd in range(LISTEN_FDS_START + 1, LISTEN_FDS_START + count):
            with contextlib.suppress(OSError):
                os.close(fd)
    sock = socket.socket(fileno=LISTEN_FDS_START)
    os.set_inheritable(sock.fileno(), False)
    return sock
