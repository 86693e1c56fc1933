"""Where the pipeline's time goes, and how fast the spool drains (base: imports nothing
of ours).

`StageTimes` adds up CPU and wall time per stage of a mail's path (parse, thread, rules,
store, render, send). Stages nest: time spent in an inner stage counts for the inner
one only, so the figures add up to the whole without double counting ("store" is the
transaction minus the stages timed inside it). Two clock reads per stage boundary keep
it cheap enough to leave on; /metrics exposes the sums and `bench/pipeline.py` divides
them by the mails.

`DrainRate` remembers when recent mails left the spool, so `helpdesk status` and
/metrics can say how fast a backlog shrinks and when it will be empty.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

STAGES = ("parse", "thread", "rules", "store", "render", "send")


@dataclass
class StageTotal:
    cpu: float = 0.0
    wall: float = 0.0
    count: int = 0


class StageTimes:
    def __init__(self) -> None:
        self._totals = {name: StageTotal() for name in STAGES}
        self._lock = threading.Lock()
        self._local = threading.local()  # each thread its own stack of open stages

    def _stack(self) -> list[str]:
        stack: list[str] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _charge(self, name: str, cpu: float, wall: float, done: bool) -> None:
        with self._lock:
            total = self._totals.setdefault(name, StageTotal())
            total.cpu += cpu
            total.wall += wall
            total.count += done

    @contextmanager
    def stage(self, name: str, counted: bool = True) -> Iterator[None]:
        """Time the block as `name`; an enclosing stage is paused meanwhile. Not `counted`:
        the time is the stage's, but not a run of it (a batch's commit, shared by its
        mails, each of which ran "store" once)."""
        stack = self._stack()
        cpu, wall = time.thread_time(), time.perf_counter()
        if stack:  # what the outer stage spent until now is its own
            self._charge(stack[-1], cpu - self._local.cpu, wall - self._local.wall, False)
        stack.append(name)
        self._local.cpu, self._local.wall = cpu, wall
        try:
            yield
        finally:
            cpu, wall = time.thread_time(), time.perf_counter()
            self._charge(stack.pop(), cpu - self._local.cpu, wall - self._local.wall, counted)
            self._local.cpu, self._local.wall = cpu, wall  # the outer stage resumes now

    def totals(self) -> dict[str, StageTotal]:
        with self._lock:
            return {k: StageTotal(v.cpu, v.wall, v.count) for k, v in self._totals.items()}


class DrainRate:
    """Mails finished with (stored, duplicate, quarantined) over the last `window` seconds."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._done: deque[float] = deque()
        self._started = time.monotonic()
        self._lock = threading.Lock()

    def finished(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._done.append(now)
            # pruned here too, not only when read: a process nobody asks (`helpdesk ingest`
            # of a whole maildir) keeps the last window's times, not one per mail ever
            self._prune(now)

    def _prune(self, now: float) -> None:
        while self._done and self._done[0] < now - self.window:
            self._done.popleft()

    def per_second(self) -> float:
        now = time.monotonic()
        with self._lock:
            self._prune(now)
            n = len(self._done)
        # a daemon up for 5 s has 5 s of evidence, not a minute's
        span = min(self.window, max(now - self._started, 1.0))
        return n / span


def empty_in(waiting: int, rate: float) -> float | None:
    """Seconds until the spool is empty at this rate; None: not draining (never, as is)."""
    if waiting == 0:
        return 0.0
    return waiting / rate if rate > 0 else None
