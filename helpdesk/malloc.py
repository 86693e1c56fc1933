"""The C allocator's settings for the daemon's long-lived process (issue #18: the whole
daemon under 150 MiB while draining a spool).

Python hands every block over 512 bytes (a mail's bytes, its decoded text, SQLite's
pages) to the C library's malloc. glibc gives each thread that allocates its own
arena, up to 8 per CPU, and an arena keeps what was freed in it for its own thread's
next allocation: the pipeline, outbox, hooks, scheduler, HTTP and fsync threads each
hold their own free memory. Two arenas (the main one and one for the threads) keep
one pool of free memory instead of one per thread; the threads rarely allocate at the
same instant (one GIL), so they seldom wait for each other on the arena's lock.

Only glibc has mallopt; elsewhere (musl, macOS) this does nothing. An administrator's
own MALLOC_ARENA_MAX or GLIBC_TUNABLES wins.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("helpdesk.malloc")

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2


def tune_for_daemon() -> bool:
    """Limit glibc's arenas; call before the daemon starts its threads (an arena is
    given to a thread at its first allocation). True when the setting was made."""
    if not sys.platform.startswith("linux"):
        return False
    if "MALLOC_ARENA_MAX" in os.environ or "GLIBC_TUNABLES" in os.environ:
        return False  # the administrator chose
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_ARENA_MAX, ARENAS))
    if not done:
        log.debug("mallopt(M_ARENA_MAX, %d) refused", ARENAS)
    return done
