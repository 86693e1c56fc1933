"""Wiring only: spool, workers, SMTP listener, signals. No mail logic lives here.

SIGTERM: stop accepting, let in-flight SMTP transactions finish spooling, let the
pipeline finish the mail in hand, then exit. SIGHUP: run the reload hooks
(rules, templates).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from starlette.routing import BaseRoute

from helpdesk import systemd as sd
from helpdesk.config import agents
from helpdesk.config.agents import DirectorySource
from helpdesk.config.settings import Settings
from helpdesk.errors import SchemaTooNew, TemporaryError
from helpdesk.ingest.imap_state import PollerStatus
from helpdesk.ingest.smtp import IntakeHandler, smtp_factory, tls_context
from helpdesk.ingest.smtp_process import ListenerProcess
from helpdesk.listeners import explained
from helpdesk.outgoing import compose as mailout
from helpdesk.outgoing.hooks import HookWorker
from helpdesk.outgoing.outbox import OutboxWorker
from helpdesk.outgoing.to_admins import alert_admins
from helpdesk.pipeline import Pipeline, Router
from helpdesk.report.status import spool_figures, write_snapshot
from helpdesk.rules.holder import RulesHolder, watch_rules
from helpdesk.spool import Spool
from helpdesk.store import db
from helpdesk.web.health import health_routes
from helpdesk.web.metrics import PipelineCollector, make_registry
from helpdesk.web.server import HttpServer, split_listen

if TYPE_CHECKING:
    from helpdesk.ingest.imap import ImapPoller
    from helpdesk.schedule.service import SchedulerService

log = logging.getLogger("helpdesk.daemon")
DRAIN_SECONDS = 20.0
STATUS_EVERY_S = 5.0
SCHEDULER_RETRY_S = 10.0


class Worker(threading.Thread):
    """Runs `step` until stopped; waits for a poke (or `idle` seconds) when there is no work."""

    def __init__(self, name: str, step: Callable[[], bool], idle: float = 1.0,
                 nice: int = 0) -> None:
        super().__init__(name=name, daemon=True)
        self.nice = nice
        self.step = step
        self.idle = idle
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.backoff = 0.0

    def poke(self) -> None:
        self.wake.set()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def run(self) -> None:
        if self.nice:
            # answering SMTP comes first; processing takes the CPU that is left
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        while not self.stopping.is_set():
            try:
                busy = self.step()
                self.backoff = 0.0
            except TemporaryError as err:
                self.backoff = min(10.0, max(0.5, self.backoff * 2))
                log.warning("%s waiting %.1fs: %s", self.name, self.backoff, err)
                busy = False
            except Exception:
                log.exception("%s: unexpected error; continuing", self.name)
                self.backoff = min(30.0, max(0.5, self.backoff * 2))
                busy = False
            if not busy:
                self.wake.wait(self.backoff or self.idle)
                self.wake.clear()


@dataclass
class Daemon:
    settings: Settings
    router: Router | None = None
    engine: Engine | None = None
    reload_hooks: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        s = self.settings
        self.engine = self.engine or db.engine_for(s)
        if self.router is None:
            # a bad rules file at start-up raises RuleError: refuse to start
            self.rules: RulesHolder | None = RulesHolder.from_settings(s)
            self.router = self.rules
            self.reload_hooks.append(self._reload_rules)
        else:
            self.rules = None
        # one directory of agents for the pipeline and the scheduler: the rules holder's
        # (reloaded with the rules, the last good kept and the admins alerted on a bad edit)
        self.directory: DirectorySource = getattr(self.router, "directory", None) or \
            agents.fixed(agents.load(agents.path_for(s)))
        self._alert_lock = threading.Lock()
        self.spool = Spool(s.data_dir / "spool")
        self.outbox = OutboxWorker(s, self.engine)
        self.outbox_worker = Worker("outbox", self._outbox_step, idle=1.0)
        # webhooks ([[api_hook]]): their own worker, so a slow receiver never delays mail
        # without hooks it only clears the events every change records (store/hook_events)
        self.hooks = HookWorker(s, self.engine)
        self.hooks_worker = Worker("hooks", self._hooks_step, idle=1.0 if s.api_hook else 30.0)
        self.registry, metrics = make_registry(self.engine, self.imap_status,
                                               self.spool.waiting)
        self.pipeline = Pipeline(s, self.engine, self.spool, self.router,
                                 on_outbox=self.outbox_worker.poke, directory=self.directory,
                                 observe=metrics.observe)
        self.registry.register(PipelineCollector(self.pipeline, self.spool.waiting))
        self.pipeline_worker = Worker("pipeline", self._pipeline_step, idle=1.0, nice=5)
        self.handler = IntakeHandler(s, self.spool, on_spooled=self.pipeline_worker.poke)
        self.server: asyncio.AbstractServer | None = None
        self.listener: ListenerProcess | None = None
        self.pollers: list[ImapPoller] = []
        if s.imap:  # the IMAP client is imported only when there is a mailbox to poll
            from helpdesk.ingest.imap import ImapPoller, default_state_dir

            self.pollers = [
                ImapPoller(entry, self.spool, self.pipeline_worker.poke,
                           default_state_dir(s.data_dir), on_stall=self._mailbox_stalled)
                for entry in s.imap
            ]
        self.http: HttpServer | None = None  # ops: /healthz, /metrics
        self.public: HttpServer | None = None  # what customers open: survey pages
        self._schema_ready = False
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.reload_hooks.append(mailout.templates(s).clear)  # this daemon's, no other's
        self.scheduler: SchedulerService | None = None
        if s.scheduler.enabled:
            from helpdesk.schedule.service import SchedulerService

            self.scheduler = SchedulerService(s, self.engine, on_outbox=self.outbox_worker.poke,
                                              directory=self.directory)

    def _reload_rules(self) -> None:
        assert self.rules is not None
        error = self.rules.reload()
        if error is not None:
            self._rules_refused(error)

    def _alert(self, subject: str, text: str, key: str | None = None) -> None:
        """Mail the admins; an alert must never take down the part that raised it."""
        try:
            # one at a time: a SIGHUP and the file watcher can report the same refused
            # file at once, and alert_admins' "sent within the hour" check is no lock
            with self._alert_lock:
                alert_admins(self.settings, self.engine, subject, text, key)  # type: ignore[arg-type]
        except TemporaryError as err:
            log.warning("could not alert admins (%s): %s", subject, err)

    def _rules_refused(self, error: Exception) -> None:
        self._alert("rules file refused",
                    f"The rules files were changed but could not be loaded; the previous "
                    f"rules stay in force until this is fixed, and the daemon will not "
                    f"start with these files:\n\n{error}\n",
                    key=str(error))  # each different mistake is news, the same one is not

    # -- workers -----------------------------------------------------------------

    def _ensure_schema(self) -> None:
        if not self._schema_ready:
            try:
                db.upgrade(self.settings.database_url)
            except SchemaTooNew as err:
                # a rolling upgrade: another machine's newer helpdesk migrated first.
                # Within a minor version migrations only add, so this one runs on it.
                log.warning("%s; running on it meanwhile (docs/operations.md, Upgrade)", err)
            self._schema_ready = True
            moved = self.pipeline.quarantine_shunted()
            if moved:
                log.warning("moved %d repeatedly failing spool entries to quarantine", moved)

    def _pipeline_step(self) -> bool:
        self._ensure_schema()
        outcomes = self.pipeline.process_batch()
        deferred = [o for o in outcomes if o.kind == "deferred"]
        if deferred:
            raise TemporaryError(deferred[0].detail)
        return bool(outcomes)

    def _outbox_step(self) -> bool:
        if not self._schema_ready:
            return False
        with self.pipeline.times.stage("send"):
            result = self.outbox.deliver_due()
        if self.outbox.dead_rows:
            dead, self.outbox.dead_rows = self.outbox.dead_rows, []
            self._given_up("outgoing mail given up",
                           f"{len(dead)} outgoing mail(s) could not be delivered and were "
                           f"given up (outbox ids {', '.join(map(str, dead))})",
                           "helpdesk outbox list", "helpdesk outbox retry", "once that is fixed",
                           "sends")
        return result.sent > 0 and result.failed == 0

    def _hooks_step(self) -> bool:
        if not self._schema_ready:
            return False
        delivered = self.hooks.deliver_due()
        if self.hooks.dead_rows:
            dead, self.hooks.dead_rows = self.hooks.dead_rows, []
            self._given_up("webhook deliveries given up",
                           f"{len(dead)} webhook deliveries were given up (ids "
                           f"{', '.join(f'{i} to {hook}' for i, hook in dead)})",
                           "helpdesk api hooks log", "helpdesk api hooks retry",
                           "once the receiver is back", "posts")
        return delivered > 0

    def _given_up(self, subject: str, what: str, listing: str, retry: str, when: str,
                  verb: str) -> None:
        """Tell the admins of rows given up, and the commands that list and retry them."""
        self._alert(subject, f"{what}. `{listing} --status dead` says why; {when}, "
                             f"`{retry} ID` (or `--all-dead`) {verb} them again.\n")

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        await self._bind_listeners()
        recovered, shunted = self.spool.recover()
        if recovered or shunted:
            log.warning("spool recovery: %d mails resumed, %d set aside", recovered, shunted)
        try:
            self._ensure_schema()
        except TemporaryError as err:
            log.error("database unavailable at start (%s); accepting mail into the spool", err)
        self.pipeline_worker.start()
        self.outbox_worker.start()
        self.hooks_worker.start()
        await self._start_smtp()
        for poller in self.pollers:
            poller.start()
        await self._start_http()
        await self._start_scheduled_work()
        if self.rules is not None:
            self._tasks.append(asyncio.create_task(self._watch_rules()))
        self._tasks.append(asyncio.create_task(self._write_status()))

    def _mailbox_stalled(self, name: str, since: object, error: object) -> None:
        self._alert(f"mailbox {name} unreachable",
                    f"The IMAP mailbox {name!r} has not been reached since {since}.\n"
                    f"Last error: {error}\n\nMail sent to it is waiting on the server; "
                    f"nothing is lost, but no tickets are made from it until this is "
                    f"fixed. `helpdesk imap check {name}` shows what is wrong.\n")

    async def _bind_listeners(self) -> None:
        """Bind every listening socket first: a start that cannot listen (a second daemon,
        a mail server on the port) stops here with one line, before it recovers the spool
        (that would take a running daemon's mail from its hands) or starts any work."""
        cfg, data_dir = self.settings.smtp, self.settings.data_dir
        if cfg.enabled:
            inherited = sd.inherited_socket()  # systemd socket activation (helpdesk.socket)
            with explained("LMTP" if cfg.lmtp else "SMTP", cfg.host, cfg.port, data_dir):
                if cfg.separate_process and self.settings.source is not None:
                    self.listener = ListenerProcess(self.settings, self.pipeline_worker.poke,
                                                    sock=inherited)
                else:
                    factory = smtp_factory(self.settings, self.handler,
                                           tls_context(self.settings))
                    loop = asyncio.get_running_loop()
                    self.server = await (
                        loop.create_server(factory, sock=inherited, start_serving=False)
                        if inherited is not None else
                        loop.create_server(factory, cfg.host, cfg.port, start_serving=False))
        http = self.settings.http
        if http.listen:
            host, port = split_listen(http.listen)
            with explained("HTTP", host, port, data_dir):
                self.http = HttpServer(http.listen, list(health_routes(self, self.registry)),
                                       "ops: /healthz, /metrics",
                                       head_timeout=http.head_timeout,
                                       max_connections=http.max_connections)
        public = self._public_routes()
        if http.public and public:
            host, port = split_listen(http.public)
            with explained("HTTP (public)", host, port, data_dir):
                self.public = HttpServer(http.public, public, "public: survey pages, desk",
                                         head_timeout=http.head_timeout,
                                         max_connections=http.max_connections)

    def _public_routes(self) -> list[BaseRoute]:
        if not (self.settings.survey.enabled or self.settings.web.enabled
                or self.settings.portal.enabled or self.settings.api.enabled
                or self.settings.kb.enabled):
            return []
        from helpdesk.web.app import public_routes
        from helpdesk.web.context import default_base_url

        def base_url() -> str:  # the port the listener really got, when configured as 0
            return default_base_url(self.settings, self.public.port if self.public else None)

        return public_routes(self.settings, self.engine, self.directory,
                             on_outbox=self.outbox_worker.poke, base_url=base_url,
                             on_spooled=self.pipeline_worker.poke)

    async def _start_http(self) -> None:
        for server in (self.http, self.public):
            if server is not None:
                await server.start()
        if self.public is not None and self.settings.web.enabled:
            from helpdesk.web.context import default_base_url

            # the address to open, where `./scripts/run` (or the journal) shows it
            log.info("agent desk at %s/desk/ (a first sign-in: helpdesk web login-link NAME)",
                     default_base_url(self.settings, self.public.port))

    def imap_status(self) -> list[PollerStatus]:
        return [p.status() for p in self.pollers]

    def status(self) -> dict[str, object]:
        return {
            "pid": os.getpid(),
            "smtp": {"listening": self.smtp_listening,
                     "port": self.smtp_port if self.smtp_listening else None},
            "imap": [p.status() for p in self.pollers],
            "rules_error": str(self.rules.last_error) if self.rules and self.rules.last_error
            else None,
        }

    def _write_snapshot(self, status: dict[str, object]) -> None:
        # in a thread, not on the loop: counting the spool reads directories and bundle heads
        spool = {**spool_figures(self.spool),
                 "drain_per_s": round(self.pipeline.drain_rate.per_second(), 2)}
        write_snapshot(self.settings.data_dir, {**status, "spool": spool})

    async def _write_status(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self._write_snapshot, self.status())
            except OSError as err:
                log.warning("could not write status snapshot: %s", err)
            await asyncio.sleep(STATUS_EVERY_S)

    async def _start_scheduled_work(self) -> None:
        if self.scheduler is not None:
            self._tasks.append(asyncio.create_task(self._keep_trying_scheduler()))

    async def _keep_trying_scheduler(self) -> None:
        """Mail intake must not depend on the scheduler: start it when the database lets us."""
        assert self.scheduler is not None
        while True:
            try:
                await self.scheduler.start()
                return
            except Exception as err:
                log.error("scheduler not started (%s); retrying in %ss; `helpdesk jobs "
                          "run-due` still works", err, SCHEDULER_RETRY_S)
            await asyncio.sleep(SCHEDULER_RETRY_S)

    async def _watch_rules(self) -> None:
        assert self.rules is not None
        try:
            await watch_rules(self.rules, on_error=lambda err: asyncio.to_thread(
                self._rules_refused, err))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("rules watcher stopped; SIGHUP still reloads the rules")

    async def _start_smtp(self) -> None:
        cfg = self.settings.smtp
        if self.listener is not None:
            await asyncio.to_thread(self.listener.start)
            log.info("SMTP listener process %s on %s:%s", self.listener.proc.pid,  # type: ignore[union-attr]
                     cfg.host, self.listener.port)
        elif self.server is not None:
            await self.server.start_serving()
            log.info("listening for %s on %s:%s", "LMTP" if cfg.lmtp else "SMTP", cfg.host,
                     self.smtp_port)

    @property
    def smtp_port(self) -> int:
        if self.listener is not None:
            return self.listener.port
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def smtp_listening(self) -> bool:
        return self.server is not None or (self.listener is not None and self.listener.alive)

    def reload(self) -> None:
        for hook in self.reload_hooks:
            try:
                hook()
            except Exception:
                log.exception("reload hook %s failed; previous state kept", hook)
        log.info("reloaded")

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self) -> None:
        sd.notify("STOPPING=1")
        self.handler.accepting = False
        if self.listener is not None:
            await asyncio.to_thread(self.listener.stop)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.server is not None:
            self.server.close()
        if self.scheduler is not None:
            await self.scheduler.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_SECONDS
        while self.handler.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for poller in self.pollers:
            poller.stop()
        for worker in (self.pipeline_worker, self.outbox_worker, self.hooks_worker):
            worker.stop()
        for worker in (self.pipeline_worker, self.outbox_worker, self.hooks_worker):
            if worker.is_alive():
                await asyncio.to_thread(worker.join, max(0.1, deadline - loop.time()))
        if not self.pipeline_worker.is_alive():  # else it may still be in a batch
            self.pipeline.close()
        for poller in self.pollers:
            await asyncio.to_thread(poller.join, 15)
        for server in (self.http, self.public):
            if server is not None:
                await server.stop()
        log.info("stopped")

    async def serve(self, ready: Callable[[], None] | None = None) -> None:
        """Start, run until SIGTERM/SIGINT (or request_stop), then drain."""
        loop = asyncio.get_running_loop()
        await self.start()
        installed = []
        for sig, action in ((signal.SIGTERM, self.request_stop), (signal.SIGINT, self.request_stop),
                            (signal.SIGHUP, self.reload)):
            try:
                loop.add_signal_handler(sig, action)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests run the daemon in a thread)
        if ready:
            ready()
        # the listener is up (start() waited for it): systemd may now route mail to us
        sd.notify(f"READY=1\nSTATUS=accepting mail on port "
                  f"{self.smtp_port if self.smtp_listening else '-'}")
        try:
            await self._stop.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.stop()
