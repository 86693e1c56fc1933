"""What stops being kept, at the end of each scheduler pass.

Two tables otherwise only grow: the outbox keeps the full MIME text of every mail
sent (attachments included, a second copy of what the ticket's history holds), and
the webhook log every delivery with its event. After `[outgoing] sent_text_kept` a
sent mail's text is dropped (its row stays: a reply to it still threads and still
proves the agent it went to); after `[api] hook_log_kept` a finished delivery is
deleted, and its event with the last delivery of it.

Rows are visited in id order from a watermark kept in scheduler_state, so a pass
reads only rows no pass has settled yet. It stops at the first row not done with
(still being sent, or not old enough): ids follow creation, so the rows after it are
about as young, and they are looked at again with it in a later pass.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from datetime import datetime
from functools import partial

from sqlalchemy import Engine, delete, func, update
from sqlmodel import Session, col, select

from helpdesk.config.schedule import duration_text
from helpdesk.config.settings import Settings
from helpdesk.store.api_models import HookDelivery, HookEvent
from helpdesk.store.db import session_scope
from helpdesk.store.models import Outbox
from helpdesk.store.scheduler_state import HOOK_LOG_MARK, OUTBOX_TEXT_MARK, set_state, state

BATCH = 500  # rows per transaction: a short write lock on SQLite


# one transaction's work from a watermark: (the last id it settled, rows it changed,
# whether rows may follow that it did not read)
Batch = Callable[[Session, int], tuple[int, int, bool]]


def prune(settings: Settings, engine: Engine, now: datetime) -> list[str]:
    """Drop what is past keeping; returns a line for the pass report per kind dropped."""
    lines = []
    kept = settings.outgoing.sent_text_kept
    texts = _walk(engine, OUTBOX_TEXT_MARK, partial(_sent_texts, now - kept))
    if texts:
        lines.append(f"retention: dropped the text of {texts} mail(s) sent over "
                     f"{duration_text(kept)} ago ([outgoing] sent_text_kept)")
    kept = settings.api.hook_log_kept
    hooks = {hook.name for hook in settings.api_hook}
    deliveries = _walk(engine, HOOK_LOG_MARK, partial(_hook_log, now - kept, hooks))
    if deliveries:
        lines.append(f"retention: deleted {deliveries} webhook deliveries older than "
                     f"{duration_text(kept)} ([api] hook_log_kept)")
    return lines


def _walk(engine: Engine, mark_name: str, batch: Batch) -> int:
    """Run `batch` from the watermark `mark_name` on, a transaction at a time, moving the
    mark over what it settled, until no rows may follow; the rows changed."""
    changed = 0
    while True:
        with session_scope(engine) as session:
            mark = int(state(session, mark_name) or 0)
            settled, count, more = batch(session, mark)
            if settled != mark:
                set_state(session, mark_name, str(settled))
        changed += count
        if not more:
            return changed


def _sent_texts(cutoff: datetime, session: Session, mark: int) -> tuple[int, int, bool]:
    rows = session.exec(select(Outbox.id, Outbox.status, Outbox.sent_at, func.length(Outbox.raw))
                        .where(col(Outbox.id) > mark).order_by(col(Outbox.id))
                        .limit(BATCH)).all()
    settled, drop = mark, []
    for row_id, status, sent_at, size in rows:
        if status == "sent" and sent_at is not None and sent_at < cutoff:
            if size:  # not dropped already (a mail sent again moves the mark back)
                drop.append(row_id)
        elif status != "dead":  # dead mail keeps its text for whoever looks into it
            break
        settled = int(row_id or 0)
    if drop:
        session.execute(update(Outbox).where(col(Outbox.id).in_(drop)).values(raw=b"")
                        .execution_options(synchronize_session=False))
    # more may follow a full batch read to its end; a row not done with stops the walk
    return settled, len(drop), len(rows) == BATCH and settled == rows[-1][0]


def _hook_log(cutoff: datetime, hooks: Container[str], session: Session,
              mark: int) -> tuple[int, int, bool]:
    rows = session.exec(select(HookDelivery.id, HookDelivery.status, HookDelivery.hook,
                               HookDelivery.created_at, HookDelivery.event_id)
                        .where(col(HookDelivery.id) > mark)
                        .order_by(col(HookDelivery.id)).limit(BATCH)).all()
    settled, drop, events = mark, [], set()
    for row_id, status, hook, created_at, event_id in rows:
        # a hook taken out of the config leaves its deliveries unsent for good
        finished = status in ("sent", "dead") or hook not in hooks
        if not finished or created_at >= cutoff:
            break
        drop.append(row_id)
        events.add(event_id)
        settled = int(row_id or 0)
    if drop:
        session.execute(delete(HookDelivery).where(col(HookDelivery.id).in_(drop))
                        .execution_options(synchronize_session=False))
        still_used = select(HookDelivery.event_id).where(col(HookDelivery.event_id).in_(events))
        session.execute(delete(HookEvent).where(col(HookEvent.id).in_(events),
                                                col(HookEvent.id).not_in(still_used))
                        .execution_options(synchronize_session=False))
    return settled, len(drop), len(rows) == BATCH and settled == rows[-1][0]
