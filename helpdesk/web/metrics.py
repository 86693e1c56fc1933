"""Prometheus metrics: counters the pipeline updates, and figures read at scrape time.

Two kinds, on purpose:

- What only this process sees (mails it processed, how long each took) is counted
  as it happens, by `PipelineMetrics.observe`, the pipeline's one hook.
- What the database or the daemon already knows (tickets, outbox, quarantine, IMAP
  mailboxes) is read when Prometheus scrapes, by `StateCollector`. Read from the
  database, these agree across several daemons sharing it and survive restarts;
  counting them in memory would make each daemon report a different story.

Each daemon has a registry of its own, so daemons started in one test process do
not mix their counters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from helpdesk import clock
from helpdesk.pipeline import Outcome, Pipeline
from helpdesk.schedule import sla
from helpdesk.spool import Envelope
from helpdesk.store.db import session_scope
from helpdesk.store.models import Message, Outbox, Quarantine, Ticket, TicketStep
from helpdesk.throughput import empty_in

log = logging.getLogger("helpdesk.web.metrics")

# seconds; mail processing is milliseconds when healthy, minutes when the DB is away
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                   60.0, 300.0)


def sla_breaches(session: Session) -> int:
    """SLA clocks that ran out: the scheduler records each breach once as a ticket step."""
    return int(session.exec(select(func.count()).select_from(TicketStep)
                            .where(col(TicketStep.key).like(sla.BREACH_KEYS))).one())


class PipelineMetrics:
    """Counters the pipeline updates for each mail it finishes with."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.mails = Counter("helpdesk_mails_processed", "Mails this daemon processed, by "
                             "route (smtp, lmtp, imap:NAME, ingest) and outcome",
                             ["route", "outcome"], registry=registry)
        self.processing = Histogram("helpdesk_processing_seconds", "Pipeline time for one "
                                    "mail: parse, thread, rules, store", buckets=LATENCY_BUCKETS,
                                    registry=registry)
        self.end_to_end = Histogram("helpdesk_intake_to_stored_seconds", "From the spool "
                                    "write (the 250) to the ticket stored",
                                    buckets=LATENCY_BUCKETS, registry=registry)

    def observe(self, envelope: Envelope, outcome: Outcome, seconds: float) -> None:
        self.mails.labels(route=envelope.route, outcome=outcome.kind).inc()
        self.processing.observe(seconds)
        if outcome.kind == "stored" and envelope.received_at:
            try:
                waited = (clock.now() - datetime.fromisoformat(envelope.received_at)
                          ).total_seconds()
            except (ValueError, TypeError):
                return  # an entry written by an older version without a usable time
            self.end_to_end.observe(max(0.0, waited))


class StateCollector(Collector):
    """Figures read at scrape time from the database and the daemon's own state."""

    def __init__(self, engine: Engine, imap_status: Callable[[], Iterable[Any]],
                 spool_waiting: Callable[[], int]) -> None:
        self.engine = engine
        self.imap_status = imap_status
        self.spool_waiting = spool_waiting

    def collect(self) -> Iterator[Metric]:
        yield from self._imap()
        # this daemon's own spool: what waits here is safe, but not yet a ticket
        yield GaugeMetricFamily("helpdesk_spool_waiting", "Mails accepted by this daemon "
                                "and waiting in its spool (incl. IMAP batches)",
                                value=self.spool_waiting())
        try:
            figures = self._database()
        except Exception as err:  # a scrape reports the outage; it must not fail itself
            log.warning("metrics: database unavailable: %s", err)
            figures = []
        yield from figures
        up = GaugeMetricFamily("helpdesk_database_up", "1 when the database answered this scrape")
        up.add_metric([], 1.0 if figures else 0.0)
        yield up

    def _database(self) -> list[Metric]:
        with session_scope(self.engine) as session:
            by_route = session.exec(select(Message.route, func.count())
                                    .where(Message.direction == "in")
                                    .group_by(Message.route)).all()
            tickets = session.exec(select(func.count()).select_from(Ticket)).one()
            outbox = session.exec(select(Outbox.status, Outbox.last_error != "", func.count())
                                  .group_by(Outbox.status, Outbox.last_error != "")).all()
            held = session.exec(select(func.count()).select_from(Quarantine)
                                .where(col(Quarantine.status) == "held")).one()
            breaches = sla_breaches(session)
        received = CounterMetricFamily("helpdesk_mails_received", "Incoming mails stored, by "
                                       "route, all daemons sharing the database", labels=["route"])
        for route, n in by_route:
            received.add_metric([route or "unknown"], n)
        return [
            received,
            CounterMetricFamily("helpdesk_tickets_opened", "Tickets opened", value=tickets),
            _outbox_family(outbox),
            GaugeMetricFamily("helpdesk_quarantine_held", "Mails held in quarantine", value=held),
            CounterMetricFamily("helpdesk_sla_breaches", "Tickets that breached their SLA",
                                value=breaches),
        ]

    def _imap(self) -> Iterator[Metric]:
        errors = CounterMetricFamily("helpdesk_imap_errors", "IMAP connection or command "
                                     "failures since start", labels=["mailbox"])
        up = GaugeMetricFamily("helpdesk_imap_connected", "1 while the mailbox is connected",
                               labels=["mailbox"])
        for status in self.imap_status():
            errors.add_metric([status.name], status.errors)
            up.add_metric([status.name], 1.0 if status.connected else 0.0)
        yield errors
        yield up


class PipelineCollector(Collector):
    """This daemon's backlog (how fast its spool drains, when it will be empty) and where
    its pipeline's time goes, by stage (parse, thread, rules, store, render, send)."""

    def __init__(self, pipeline: Pipeline, spool_waiting: Callable[[], int]) -> None:
        self.pipeline = pipeline
        self.spool_waiting = spool_waiting

    def collect(self) -> Iterator[Metric]:
        rate = self.pipeline.drain_rate.per_second()
        eta = empty_in(self.spool_waiting(), rate)
        yield GaugeMetricFamily("helpdesk_spool_drain_rate", "Mails this daemon took out of "
                                "its spool per second, over the last minute", value=rate)
        # +Inf: mail waits and nothing drains (the database away, the pipeline stuck)
        yield GaugeMetricFamily("helpdesk_spool_empty_in_seconds", "When the spool will be "
                                "empty at the current drain rate; +Inf: not draining",
                                value=float("inf") if eta is None else eta)
        cpu = CounterMetricFamily("helpdesk_pipeline_stage_cpu_seconds", "CPU time the "
                                  "pipeline spent in each stage", labels=["stage"])
        wall = CounterMetricFamily("helpdesk_pipeline_stage_seconds", "Wall-clock time the "
                                   "pipeline spent in each stage (CPU plus waiting: disk, "
                                   "locks, the relay)", labels=["stage"])
        runs = CounterMetricFamily("helpdesk_pipeline_stage_runs", "Times each stage ran "
                                   "(send: outbox passes, several mails each)", labels=["stage"])
        for stage, total in self.pipeline.times.totals().items():
            cpu.add_metric([stage], total.cpu)
            wall.add_metric([stage], total.wall)
            runs.add_metric([stage], total.count)
        yield from (cpu, wall, runs)


def _outbox_family(rows: Iterable[tuple[str, bool, int]]) -> GaugeMetricFamily:
    """Outbox rows by status; "failed" are queued rows waiting to retry after a failure."""
    counts = dict.fromkeys(("queued", "sending", "sent", "failed", "dead"), 0)
    for status, has_error, n in rows:
        key = "failed" if status == "queued" and has_error else status
        counts[key] = counts.get(key, 0) + n
    family = GaugeMetricFamily("helpdesk_outbox_messages", "Outgoing mails by status",
                               labels=["status"])
    for status, n in counts.items():
        family.add_metric([status], n)
    return family


def make_registry(engine: Engine, imap_status: Callable[[], Iterable[Any]],
                  spool_waiting: Callable[[], int]) -> tuple[CollectorRegistry, PipelineMetrics]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(engine, imap_status, spool_waiting))
    return registry, PipelineMetrics(registry)
