"""Deliver webhook events ([[api_hook]]): the outbox of webhooks, with outbox.py's habits.

1. Fan out: events the store recorded (store/hook_events.py, in the change's own
   transaction) get one delivery row per configured hook that wants their kind; the
   event is marked `fanned_out` in the same transaction, so each gets its rows once.
2. Deliver: a due row is claimed in its own short transaction (status "sending" with a
   lease; FOR UPDATE SKIP LOCKED on PostgreSQL, so two daemons never take the same
   row), POSTed, and marked "sent" in the next one. A failure waits with doubling
   backoff (to [api] hook_backoff_max) and is given up ("dead") after
   [api] hook_give_up_after. A receiver answering 410 Gone is dead at once.
   The only window for a duplicate is a crash between the receiver's 2xx and the
   "sent" commit; a receiver folds it by X-Helpdesk-Delivery (the same on every try).
   A "sent" record that failed to commit is remembered in memory, so this process
   never posts it twice.

The body is the event's JSON; X-Helpdesk-Signature is "sha256=" + HMAC-SHA256 of
"<X-Helpdesk-Timestamp>.<body>" under the hook's secret (the timestamp in the signed
text lets a receiver refuse old replays). Sent with urllib (no redirects followed).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.config.web import ApiHookSection
from helpdesk.errors import HelpdeskError
from helpdesk.outgoing.requeue import requeue_dead
from helpdesk.store.api_models import HookDelivery, HookEvent
from helpdesk.store.db import session_scope

log = logging.getLogger("helpdesk.outgoing.hooks")
LEASE = timedelta(minutes=2)
FIRST_WAIT = 10.0
FAN_OUT_BATCH = 200


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body,
                                hashlib.sha256).hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None  # a 3xx is an answer (a failure), not somewhere else to post events


_OPENER = urllib.request.build_opener(_NoRedirect)


class Refused(HelpdeskError):
    """A receiver did not take a delivery: why, its HTTP status, whether to give up."""

    def __init__(self, why: str, status: int | None = None, final: bool = False) -> None:
        super().__init__(why)
        self.status, self.final = status, final


def post(hook: ApiHookSection, delivery_id: int, body: bytes, timeout: float) -> int:
    """POST one event; returns the receiver's status, raises Refused."""
    secret = hook.key
    if not secret:
        raise Refused(f"the secret is empty (is ${hook.secret_env} set?)")
    stamp = str(int(time.time()))
    request = urllib.request.Request(hook.url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "helpdesk-webhooks",
        "X-Helpdesk-Delivery": str(delivery_id), "X-Helpdesk-Timestamp": stamp,
        "X-Helpdesk-Signature": sign(secret, stamp, body)})
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        err.close()
        raise Refused(f"HTTP {err.code}", err.code, final=err.code == 410) from None
    except (OSError, ValueError) as err:
        raise Refused(f"unreachable: {err}") from None


class HookWorker:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.hooks = {h.name: h for h in settings.api_hook}
        self._unrecorded: set[int] = set()
        self.dead_rows: list[tuple[int, str]] = []  # (id, hook) given up: the daemon alerts

    def fan_out(self, limit: int = FAN_OUT_BATCH) -> int:
        with session_scope(self.engine) as session:
            events = session.exec(select(HookEvent).where(col(HookEvent.fanned_out).is_(False))
                                  .order_by(col(HookEvent.id)).limit(limit)
                                  .with_for_update(skip_locked=True)).all()
            # events recorded while no hook was configured, older than a delivery would
            # be kept trying, are not news: a hook added today gets no months-old flood
            oldest = clock.now() - self.settings.api.hook_give_up_after
            for ev in events:
                wanted = [hook.name for hook in self.hooks.values()
                          if ev.kind in hook.events and ev.at >= oldest]
                if not wanted:  # no hook wants it (or there are none): not kept forever
                    session.delete(ev)
                    continue
                session.add_all(HookDelivery(event_id=int(ev.id or 0), hook=name)
                                for name in wanted)
                ev.fanned_out = True
                session.add(ev)
            return len(events)

    def _claim(self) -> tuple[HookDelivery, bytes] | None:
        now = clock.now()
        with session_scope(self.engine) as session:
            row = session.exec(select(HookDelivery).where(
                col(HookDelivery.status).in_(("queued", "sending")),
                HookDelivery.next_attempt_at <= now, col(HookDelivery.hook).in_(self.hooks))
                .order_by(col(HookDelivery.next_attempt_at), col(HookDelivery.id)).limit(1)
                .with_for_update(skip_locked=True)).first()
            if row is None:
                return None
            row.status, row.attempts = "sending", row.attempts + 1
            row.next_attempt_at = now + LEASE
            session.add(row)
            event = session.get(HookEvent, row.event_id)
            payload = dict(event.payload) if event else {}
            payload["delivery"] = row.id
            return row, json.dumps(payload, separators=(",", ":")).encode()

    def _finish(self, session: Session, row_id: int, *, status: int | None,
                error: str = "", final: bool = False) -> None:
        row = session.get(HookDelivery, row_id)
        if row is None:
            return
        row.last_status, row.last_error = status, error[:1000]
        cfg = self.settings.api
        if not error:
            row.status, row.sent_at = "sent", clock.now()
        elif final or clock.now() - row.created_at > cfg.hook_give_up_after:
            row.status = "dead"
            self.dead_rows.append((row_id, row.hook))
        else:
            wait = min(cfg.hook_backoff_max.total_seconds(),
                       FIRST_WAIT * 2 ** max(0, row.attempts - 1))
            row.status, row.next_attempt_at = "queued", clock.now() + timedelta(seconds=wait)
        session.add(row)

    def deliver_due(self, limit: int = 100) -> int:
        """Fan out new events, then post what is due; returns how many were delivered."""
        for _ in range(50):  # a storm's events, a batch at a time, before any posting
            if self.fan_out() < FAN_OUT_BATCH:
                break
        for row_id in sorted(self._unrecorded):
            with session_scope(self.engine) as session:
                self._finish(session, row_id, status=200)
            self._unrecorded.discard(row_id)
        sent = 0
        for _ in range(limit):
            claimed = self._claim()
            if claimed is None:
                break
            row, body = claimed
            rid = int(row.id or 0)
            try:
                status = post(self.hooks[row.hook], rid, body, self.settings.api.hook_timeout)
            except Refused as err:
                with session_scope(self.engine) as session:
                    self._finish(session, rid, status=err.status, error=str(err),
                                 final=err.final)
                log.warning("webhook %s delivery %s failed: %s", row.hook, rid, err)
                continue
            self._unrecorded.add(rid)  # posted: never again from this process
            with session_scope(self.engine) as session:
                self._finish(session, rid, status=status)
            self._unrecorded.discard(rid)
            sent += 1
        return sent


def log_of(session: Session, hook: str | None, limit: int = 50, status: str | None = None
           ) -> list[tuple[HookDelivery, HookEvent]]:
    """The newest deliveries (of one hook, or all; in one status, or any) with their events."""
    stmt = (select(HookDelivery, HookEvent).join(HookEvent, col(HookEvent.id) ==
                                                  col(HookDelivery.event_id))
            .order_by(col(HookDelivery.id).desc()).limit(limit))
    if hook:
        stmt = stmt.where(HookDelivery.hook == hook)
    if status:
        stmt = stmt.where(HookDelivery.status == status)
    return [(d, e) for d, e in session.exec(stmt).all()]


def send_again(session: Session, ids: Iterable[int] | None, hook: str | None = None
               ) -> list[int]:
    """Queue given-up (dead) deliveries again, due now: those of `ids`, or every one
    (None), of one hook or all. Each gets one more try: a receiver that fails it again
    gives it up again at once ([api] hook_give_up_after counts from the event). Returns
    the ids queued; ids that are not dead are left as they are."""
    return requeue_dead(session, HookDelivery, ids,
                        *([HookDelivery.hook == hook] if hook else []))
