"""APScheduler (3.x) inside `helpdesk run`: one interval job, stored in the database.

- The job store is SQLAlchemyJobStore in the helpdesk database (table
  apscheduler_jobs, created by APScheduler itself). The job has a fixed id and is
  added with replace_existing, so restarts and config changes never duplicate it.
- coalesce=True and misfire_grace_time=None: runs missed while the loop was busy
  or the daemon was down collapse into one. At start the job is due at once, so
  what fell due during downtime runs once, right away. The pass itself is
  catch-up by design (it does everything due up to now, once).
- Leadership: on PostgreSQL a daemon runs passes only while it holds a session
  advisory lock on a connection of its own; other daemons skip, and take over
  when the leader's connection goes. On SQLite a single daemon is assumed (the
  step marks would still stop a double send, but two writers would just wait on
  each other).
- Jobs are pickled by reference: the job is the module-level `scheduled_pass`, the
  same stored row for every daemon on the database (so nothing daemon-specific can
  ride in it: the last daemon to start would overwrite it, and the others would find
  no runner under its key). Which runner a pass means is decided where it runs: each
  SchedulerService runs its jobs on a thread pool of its own whose thread is bound to
  its runner, so two daemons in one process each run their own passes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Connection, Engine, create_engine, pool, text

from helpdesk import clock
from helpdesk.config.agents import DirectorySource
from helpdesk.config.settings import Settings
from helpdesk.schedule import sweep as jobs

log = logging.getLogger("helpdesk.schedule.service")
JOB_ID = "helpdesk-pass"
# the runner of the scheduler whose pool thread this is (see _bind); threads that no
# scheduler started have none
_bound = threading.local()


class Leader:
    """Holds pg_try_advisory_lock on a dedicated autocommit connection (PostgreSQL)."""

    def __init__(self, url: str, key: int) -> None:
        self.url = url
        self.key = key
        self.engine: Engine | None = None
        self.conn: Connection | None = None

    @property
    def shared(self) -> bool:
        return self.url.startswith("postgresql")

    def holds(self) -> bool:
        if not self.shared:
            return True
        if self.conn is not None:
            try:
                self.conn.execute(text("SELECT 1"))
                return True
            except Exception as err:
                log.warning("lost the leader connection (%s); trying to lead again", err)
                self.release()
        return self._acquire()

    def _acquire(self) -> bool:
        if self.engine is None:
            self.engine = create_engine(self.url, poolclass=pool.NullPool,
                                        isolation_level="AUTOCOMMIT")
        conn = self.engine.connect()
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
                   .scalar())
        if got:
            self.conn = conn
            log.info("this daemon now runs the scheduled work (advisory lock %s)", self.key)
        else:
            conn.close()
        return got

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()  # closing the session releases the advisory lock
            except Exception:
                # the server may keep the session, and the lock with it, until it notices
                # the connection is gone: other daemons cannot lead until then
                log.exception("closing the leader connection (advisory lock %s) failed",
                              self.key)
            self.conn = None

    def dispose(self) -> None:
        self.release()
        if self.engine is not None:
            self.engine.dispose()


class PassRunner:
    """What the stored job runs: one pass, if this daemon is the leader."""

    def __init__(self, settings: Settings, engine: Engine,
                 on_outbox: Callable[[], None] | None = None,
                 directory: DirectorySource | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.on_outbox = on_outbox
        self.directory = directory  # None: each pass reads agents.toml
        self.leader = Leader(settings.database_url, settings.scheduler.lock_key)
        self.lock = threading.Lock()
        self.passes = 0
        self.synced: dict[int, datetime] = {}  # see jobs.run_pass

    def run(self) -> jobs.PassReport | None:
        with self.lock:
            if not self.leader.holds():
                log.debug("not the leader: skipping this pass")
                return None
            report = jobs.run_pass(self.settings, self.engine, clock.now(), self.on_outbox,
                                   self.synced,
                                   directory=self.directory() if self.directory else None)
            self.passes += 1
        for line in report.done:
            log.info("scheduler: %s", line)
        return report


def _bind(runner: PassRunner) -> None:
    """Initialiser of a scheduler's pool thread: the passes it runs are this runner's."""
    _bound.runner = runner


def scheduled_pass() -> None:
    """The stored job (referenced by name, so it survives restarts and pickling)."""
    runner: PassRunner | None = getattr(_bound, "runner", None)
    if runner is None:
        log.warning("scheduled pass ran on a thread no scheduler bound to a daemon; skipped")
        return
    runner.run()


class SchedulerService:
    def __init__(self, settings: Settings, engine: Engine,
                 on_outbox: Callable[[], None] | None = None,
                 directory: DirectorySource | None = None) -> None:
        self.settings = settings
        self.runner = PassRunner(settings, engine, on_outbox, directory)
        self.scheduler: AsyncIOScheduler | None = None

    async def start(self) -> None:
        store = SQLAlchemyJobStore(engine=self.runner.engine, tablename="apscheduler_jobs")
        # one thread, bound to this daemon's runner (max_instances=1: never two passes)
        executor = ThreadPoolExecutor(1, pool_kwargs={
            "initializer": _bind, "initargs": (self.runner,),
            "thread_name_prefix": "scheduler"})
        self.scheduler = AsyncIOScheduler(
            jobstores={"default": store}, executors={"default": executor}, timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        self.scheduler.add_job(
            scheduled_pass, "interval", id=JOB_ID, name="SLA, stale tickets, surveys",
            seconds=self.settings.scheduler.interval.total_seconds(), replace_existing=True,
            next_run_time=datetime.now(UTC))  # catch up on what fell due while down
        self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        # let a pass in progress finish its ticket before the engine goes away
        if await asyncio.to_thread(self.runner.lock.acquire, True, 20):
            self.runner.lock.release()
        self.runner.leader.dispose()
