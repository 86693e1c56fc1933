"""The sole orchestrator: claim spool entries, parse, thread, route, store+notify, finish.

What is waiting is claimed as a batch and stored in one transaction, each mail in a
savepoint of its own (helpdesk/batch.py). Errors are caught here and only here (STYLE
habit 3): a TemporaryError (database down) gives the whole batch back to the spool to
wait; any other failure rolls back that mail's savepoint only and is counted, and a
mail that fails MAX_RECOVERIES times is quarantined with the reason, so one bad mail
never blocks the ones beside or behind it.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from helpdesk import batch, clock, thread
from helpdesk.agents import new_ticket, notify
from helpdesk.agents import reply as agent_reply
from helpdesk.agents.actions import withdraw_review
from helpdesk.config.agents import EMPTY, Directory, DirectorySource
from helpdesk.config.settings import Settings
from helpdesk.errors import HelpdeskError, ParseError, TemporaryError
from helpdesk.mail import automatic as autoreply
from helpdesk.mail import parse, replytext
from helpdesk.outgoing import to_customer as customer_mail
from helpdesk.rules import Decision, MailContext
from helpdesk.rules.context import build_context
from helpdesk.spool import MAX_RECOVERIES, Entry, Envelope, Spool
from helpdesk.store import (
    blobs,
    blobsync,
    channel,
    contacts_ops,
    quarantine_ops,
    queries,
    ticket_ops,
)
from helpdesk.store import tickets as store
from helpdesk.store.db import batch_engine, is_unavailable, session_scope
from helpdesk.store.models import Contact, Quarantine, Status, Ticket
from helpdesk.throughput import DrainRate, StageTimes

log = logging.getLogger("helpdesk.pipeline")


class Router(Protocol):
    def decide(self, ctx: MailContext) -> Decision: ...


# A reply hook may claim a mail before threading (e.g. a rating replying to a survey):
# it returns the ticket to file the mail on, and the mail then only gets stored there:
# no rules, no reopening, no acknowledgement. None passes the mail on as usual.
ReplyHook = Callable[[Session, parse.ParsedMail], Ticket | None]


def default_reply_hooks(settings: Settings, engine: Engine) -> list[ReplyHook]:
    if not settings.survey.enabled:
        return []
    from helpdesk.survey.steps import SurveyReplies

    return [SurveyReplies(settings, engine)]


class AddressRouter:
    """Queue by the address or mailbox a mail came to; used when no rules are loaded."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def decide(self, ctx: MailContext) -> Decision:
        return Decision(queue=ctx.routed_queue or ctx.default_queue)


class _Hold(HelpdeskError):
    """Raised inside the mail's transaction for a mail to quarantine instead of store;
    the quarantine is written after that transaction is rolled back."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Outcome:
    kind: str  # stored, duplicate, quarantined, deferred, retry
    ticket: str = ""
    detail: str = ""


class Pipeline:
    def __init__(self, settings: Settings, engine: Engine, spool: Spool,
                 router: Router | None = None,
                 on_outbox: Callable[[], None] | None = None,
                 directory: DirectorySource | None = None,
                 reply_hooks: list[ReplyHook] | None = None,
                 observe: Callable[[Envelope, Outcome, float], None] | None = None) -> None:
        self.settings = settings
        self.reply_hooks = (default_reply_hooks(settings, engine) if reply_hooks is None
                            else reply_hooks)
        self.engine = engine
        self.spool = spool
        self.router: Router = router or AddressRouter(settings)
        # the agents of the rules in force, so a reload (HUP) refreshes both together
        self.directory: DirectorySource = (
            directory or getattr(self.router, "directory", None) or (lambda: EMPTY))
        self.on_outbox = on_outbox
        # metrics hook: called once per mail with how it ended and how long it took
        self.observe = observe
        # CPU and wall time by stage, and how fast the spool drains (/metrics, status)
        self.times = StageTimes()
        self.drain_rate = DrainRate()
        # the batches' transactions: savepoints must nest (store.db.batch_engine)
        self.writer = batch_engine(engine)
        self._one_at_a_time = 0

    def close(self) -> None:
        """Close the batches' own connections (SQLite: an engine of their own); the
        daemon's engine is its owner's to dispose of."""
        if self.writer is not self.engine:
            self.writer.dispose()

    # -- driving -----------------------------------------------------------------

    def process_batch(self, limit: int = batch.MAX_MAILS) -> list[Outcome]:
        """Claim what is waiting (up to `limit` mails) and process it in one transaction;
        [] when the spool is empty."""
        if self._one_at_a_time:  # after a batch failed as a whole: find the mail that did it
            limit = 1
            self._one_at_a_time -= 1
        entries = batch.claim(self.spool, limit)
        return self.process_entries(entries) if entries else []

    def drain(self, limit: int = 100_000) -> list[Outcome]:
        """Process until the spool is empty or an outage defers the mail (tests, ingest)."""
        outcomes: list[Outcome] = []
        while len(outcomes) < limit:
            done = self.process_batch(min(batch.MAX_MAILS, limit - len(outcomes)))
            outcomes += done
            if not done or any(o.kind == "deferred" for o in done):
                break
        return outcomes

    def process_entry(self, entry: Entry) -> Outcome:
        """One claimed entry, in a transaction of its own (helpdesk ingest, release)."""
        return self.process_entries([entry])[0]

    def process_entries(self, entries: list[Entry]) -> list[Outcome]:
        """Claimed entries in one transaction, a savepoint each (see helpdesk/batch.py)."""
        run = batch.Batch(self.spool, entries)
        results: list[tuple[Entry, Outcome, float]] = []
        try:
            with blobsync.group() as files, session_scope(self.writer) as session:
                for entry in entries:
                    started = time.perf_counter()
                    results.append((entry, self._in_batch(session, run, entry), started))
                with self.times.stage("store", counted=False):  # durable files, one commit
                    files.sync()
                    session.commit()
        except TemporaryError as err:
            return self._deferred(run, str(err), results)
        except Exception as err:  # not one mail's (those are caught below): the commit's
            if len(entries) == 1:
                return [self._failed_alone(run, entries[0], err)]
            log.exception("batch of %d mails failed as a whole; trying them one by one",
                          len(entries))
            self._one_at_a_time = len(entries)
            return self._deferred(run, f"{type(err).__name__}: {err}", results)
        run.committed()
        for entry, outcome, started in results:
            self._observe(entry, outcome, started)
        if self.on_outbox and any(o.kind == "stored" for _, o, _ in results):
            self.on_outbox()
        return [outcome for _, outcome, _ in results]

    def _observe(self, entry: Entry, outcome: Outcome, started: float) -> None:
        if outcome.kind in ("stored", "duplicate", "quarantined"):
            self.drain_rate.finished()
        if self.observe is not None:  # from its start to its batch's commit
            self.observe(entry.envelope, outcome, time.perf_counter() - started)

    def _failed_alone(self, run: batch.Batch, entry: Entry, err: Exception) -> Outcome:
        """A mail alone in its batch whose commit failed: its failure, counted as ever."""
        try:
            with blobsync.group() as files, session_scope(self.writer) as session:
                outcome = self._failed(session, run, entry, err)
                files.sync()
        except TemporaryError as again:
            return self._deferred(run, str(again), [])[0]
        run.committed()
        self._observe(entry, outcome, time.perf_counter())
        return outcome

    def _deferred(self, run: batch.Batch, why: str,
                  results: list[tuple[Entry, Outcome, float]]) -> list[Outcome]:
        """Nothing committed: the entries go back, but for those that failed on their own
        (already retried or shunted, their outcome stands)."""
        back = {entry.name for entry in run.give_back()}
        if back:
            log.warning("deferred %d mail(s) (%s%s): %s", len(back), min(back),
                        ", ..." if len(back) > 1 else "", why)
        settled = {e.name: o for e, o, _ in results if e.name not in back}
        outcomes = []
        for entry in run.entries:
            outcome = settled.get(entry.name) or Outcome("deferred", detail=why)
            self._observe(entry, outcome, time.perf_counter())
            outcomes.append(outcome)
        return outcomes

    def _in_batch(self, session: Session, run: batch.Batch, entry: Entry) -> Outcome:
        """One mail; its failure is settled here and rolls back only its own savepoint.
        An outage (TemporaryError, or a connection lost) is the whole batch's."""
        try:
            return self._process(session, entry)
        except TemporaryError:
            raise
        except DBAPIError as err:
            if is_unavailable(err):
                raise
            return self._failed(session, run, entry, err)
        except Exception as err:
            return self._failed(session, run, entry, err)

    def _failed(self, session: Session, run: batch.Batch, entry: Entry,
                err: Exception) -> Outcome:
        reason = f"{type(err).__name__}: {err}"
        log.error("failed %s (attempt %d): %s\n%s", entry.name, entry.recoveries + 1, reason,
                  traceback.format_exc())
        if entry.recoveries + 1 < MAX_RECOVERIES:
            run.settle_retry(entry)
            return Outcome("retry", detail=reason)
        try:
            return self._quarantine(session, entry,
                                    f"processing failed {MAX_RECOVERIES} times: {reason}")
        except Exception as qerr:  # not even the quarantine table: keep the file in bad/
            path = run.settle_shunt(entry)
            log.error("could not quarantine %s (%s); kept in %s", entry.name, qerr, path)
            return Outcome("retry", detail=f"shunted to {path}")

    # -- one mail ----------------------------------------------------------------

    def _process(self, session: Session, entry: Entry) -> Outcome:
        try:
            with self.times.stage("parse"):
                mail = parse.parse(entry.raw)
        except ParseError as err:
            return self._quarantine(session, entry, f"cannot parse: {err}")
        key = store.dedupe_key(mail)
        with self.times.stage("store"):  # the savepoint, less the stages timed inside
            return self._transaction(session, entry, mail, key)

    def _transaction(self, session: Session, entry: Entry, mail: parse.ParsedMail,
                     key: str) -> Outcome:
        try:
            with session.begin_nested():
                # every Message-ID the mail carries or names, and its dedupe key, looked
                # up at once for all below
                owners = queries.message_id_owners(
                    session, [mail.message_id, *mail.in_reply_to, *mail.references], key)
                if owners.duplicate is not None:
                    return self._duplicate(entry, mail, owners.duplicate)
                return self._store(session, entry, mail, owners)
        except _Hold as held:
            return self._quarantine(session, entry, held.reason)
        except IntegrityError:
            # another daemon stored the same mail between our check and our insert (it
            # committed: PostgreSQL made our insert wait for it); our savepoint is undone
            if (earlier := queries.stored_message(session, key)) is not None:
                return self._duplicate(entry, mail, earlier)
            raise

    def _duplicate(self, entry: Entry, mail: parse.ParsedMail,
                   earlier: queries.StoredRef) -> Outcome:
        """A mail stored before (redelivered, or fetched by IMAP too): dropped, and logged
        with what it duplicates so that a wrong match can be found and undone."""
        public_id = f"{self.settings.helpdesk.ticket_prefix}-{earlier.ticket_id}"
        detail = f"duplicate of message {earlier.id} on {public_id}"
        log.info("%s: %s message_id=<%s>", entry.name, detail, mail.message_id,
                 extra={"ticket": public_id, "message_id": mail.message_id,
                        "route": entry.envelope.route})
        return Outcome("duplicate", public_id, detail)

    def _store(self, session: Session, entry: Entry, mail: parse.ParsedMail,
               owners: queries.MessageIdOwners) -> Outcome:
        hd = self.settings.helpdesk
        with self.times.stage("thread"):
            automatic = autoreply.classify(mail, entry.envelope)  # once, passed down
            bounce = automatic.bounce
            own = autoreply.own_mail_reason(session, self.settings, mail, owners)
        # an autoresponder answering a survey is not a rating, nor is our own mail
        hooks = () if automatic.machine_written or own else self.reply_hooks
        for hook in hooks:
            claimed = hook(session, mail)
            if claimed is not None:
                store.add_incoming(session, self.settings.data_dir, claimed, mail, entry.raw,
                                   route=entry.envelope.route, threaded_by="reply hook")
                return Outcome("stored", f"{hd.ticket_prefix}-{claimed.id}", "reply hook")
        with self.times.stage("thread"):
            found = thread.resolve(session, mail, entry.envelope, self.settings, owners)
            ticket = queries.ticket(session, found.ticket_id) if found.ticket_id else None
            directory = self.directory()
            agent, not_agent = agent_reply.identify(session, self.settings, directory, mail,
                                                    automatic, found)
        if agent is not None:
            outcome = self._agent_reply(session, entry, mail, agent, directory)
            if outcome is not None:
                return outcome
        elif ticket is None and not own and (opener := new_ticket.mail_opener(
                self.settings, directory, mail, automatic, found)):
            # an agent's own mail to us, no reply to anything: opens a ticket
            number, detail = new_ticket.by_mail(session, self.settings, directory, opener,
                                                mail, entry.raw, entry.envelope)
            return Outcome("stored", number, detail)
        if ticket is not None and bounce:
            return self._file_internal(session, entry, mail, ticket, found.reason, "bounce",
                                       found.reason)
        if ticket is not None and automatic.auto_reply:
            return self._file_internal(session, entry, mail, ticket, found.reason,
                                       "auto-reply", not_agent or automatic.auto_reply)
        # after agent_reply.identify: an agent's proven reply to a notification is theirs
        own = own or autoreply.notification_loop_reason(session, mail, owners)
        if own:
            return self._own_mail(session, entry, mail, ticket, found, own, not_agent)
        if ticket is not None and not found.trusted:
            return self._from_stranger(session, entry, mail, ticket, found, not_agent,
                                       directory, automatic)
        linked = found.linked_ticket_id
        if ticket is not None and self._opens_new_ticket(ticket):
            linked, ticket = ticket.id, None
        with self.times.stage("rules"):
            ctx, sender = self._context(session, entry.envelope, mail,
                                        is_reply=ticket is not None)
            decision = self.router.decide(ctx)
        is_new, reassigned, withdrawn = ticket is None, False, ""
        if ticket is None:
            ticket = self._open(session, mail, ctx, decision, linked, found.reason, bounce,
                                sender.contact)
            # opened by an agent for the customer: their fields over the rules'
            decision = new_ticket.on_behalf(session, self.settings, directory, ticket,
                                            entry.envelope, decision)
        store.add_incoming(session, self.settings.data_dir, ticket, mail, entry.raw,
                           route=entry.envelope.route, threaded_by=found.reason,
                           ticket_is_new=is_new)
        if is_new:
            with self.times.stage("render"):
                customer_mail.acknowledge(session, self.settings, ticket, mail, automatic,
                                          decision)
        else:
            # rules that apply to follow-ups
            reassigned = self.apply_decision(session, ticket, decision)
            withdrawn = self._follow_up(session, ticket, mail, found.reason)
            self._note_uninvited_cc(session, ticket, mail, directory)
        if not_agent:  # an agent's address without proof: kept as customer mail, no commands
            store.event(session, ticket, "unverified-agent", actor=mail.from_addr,
                        detail=not_agent)
        if not (bounce or decision.spam or ticket.spam or ticket.unconfirmed):
            with self.times.stage("render"):
                self._notify_agents(session, ticket, mail, directory, is_new, reassigned,
                                    withdrawn)
        return self._stored(session, entry, mail, ticket, found.reason)

    def _stored(self, session: Session, entry: Entry, mail: parse.ParsedMail, ticket: Ticket,
                reason: str) -> Outcome:
        session.flush()
        public_id = f"{self.settings.helpdesk.ticket_prefix}-{ticket.id}"
        log.info("stored %s on %s (%s) message_id=<%s>", entry.name, public_id, reason,
                 mail.message_id, extra={"ticket": public_id, "message_id": mail.message_id,
                                         "route": entry.envelope.route})
        return Outcome("stored", public_id, reason)

    def _file_internal(self, session: Session, entry: Entry, mail: parse.ParsedMail,
                       ticket: Ticket, reason: str, kind: str, why: str) -> Outcome:
        """An out-of-office, other automatic answer, bounce or our own mail come back is
        nobody's reply: it changes nothing, whatever the ticket's status (not even a
        closed one opens a new ticket), and tells nobody (an agent's own out-of-office
        answering their notification, or a bounce of it, would loop). Internal keeps it
        for the agents (the history says `auto-reply`, `bounce` or `own-mail`) but out
        of the SLA and pending clocks, out of what an agent's reply to the customer
        threads onto, and out of who is on the conversation."""
        message = store.store_incoming(session, self.settings.data_dir, ticket, mail, entry.raw,
                                       route=entry.envelope.route, threaded_by=reason)
        message.internal = True
        store.event(session, ticket, kind, actor=mail.from_addr or "unknown", detail=why)
        return self._stored(session, entry, mail, ticket, reason)

    def _own_mail(self, session: Session, entry: Entry, mail: parse.ParsedMail,
                  ticket: Ticket | None, found: thread.ThreadResult, why: str,
                  not_agent: str) -> Outcome:
        """Our own mail come back tells nobody: kept internal on the ticket our Message-ID,
        reply address or a participant's reference names; otherwise (a subject tag, or
        nothing) it goes to quarantine, never opening a ticket or earning an answer."""
        if ticket is None:
            number = queries.ticket_we_sent(session, mail.message_id) if mail.message_id \
                else None
            ticket = queries.ticket(session, number) if number is not None else None
        if ticket is None:
            raise _Hold(f"own mail: {why}")
        if not_agent:
            store.event(session, ticket, "unverified-agent", actor=mail.from_addr,
                        detail=not_agent)
        return self._file_internal(session, entry, mail, ticket, found.reason or "own mail",
                                   "own-mail", why)

    def _from_stranger(self, session: Session, entry: Entry, mail: parse.ParsedMail,
                       ticket: Ticket, found: thread.ThreadResult, not_agent: str,
                       directory: Directory, automatic: autoreply.Automatic) -> Outcome:
        """Mail naming the ticket only by a customer's Message-ID, from someone not on the
        conversation: the agents see it (internal, and they are told), but it reopens
        nothing and nobody on it is copied on the agents' replies."""
        sender = mail.from_addr or "unknown"
        why = f"{sender} is not on this conversation: kept internal, not copied"
        if not_agent:
            store.event(session, ticket, "unverified-agent", actor=sender, detail=not_agent)
        outcome = self._file_internal(session, entry, mail, ticket, found.reason,
                                      "unverified-sender", why)
        if not (ticket.spam or automatic.no_answer):
            notice = notify.Notice("unverified", replytext.latest_reply(mail.body_text),
                                   author=sender, reason=why)
            notify.follow_up(session, self.settings, directory, ticket, notice)
        return outcome

    def _agent_reply(self, session: Session, entry: Entry, mail: parse.ParsedMail,
                     agent: agent_reply.AgentMail, directory: Directory) -> Outcome | None:
        # a notification of a ticket since merged: the reply is about the survivor
        ticket = queries.ticket(session, ticket_ops.survivor(session, agent.ticket_id))
        if ticket is None:
            return None
        detail = agent_reply.handle(session, self.settings, directory, ticket, agent, mail,
                                    entry.raw, entry.envelope.route)
        return Outcome("stored", f"{self.settings.helpdesk.ticket_prefix}-{ticket.id}", detail)

    def _opens_new_ticket(self, ticket: Ticket) -> bool:
        if ticket.status == Status.CLOSED:
            return True
        window = self.settings.helpdesk.reopen_window_days
        return (ticket.status == Status.RESOLVED and bool(window)
                and ticket.resolved_at is not None
                and clock.now() - ticket.resolved_at > timedelta(days=window))

    def _notify_agents(self, session: Session, ticket: Ticket, mail: parse.ParsedMail,
                       directory: Directory, is_new: bool, reassigned: bool,
                       withdrawn: str) -> None:
        author = mail.from_name or mail.from_addr
        if is_new:
            names = notify.new_ticket_recipients(self.settings, directory, ticket)
            notify.send(session, self.settings, directory, ticket,
                        notify.Notice("new", mail.body_text, author=author,
                                      attachments=mail.attachments), names)
            return
        notice = notify.Notice("reply", replytext.latest_reply(mail.body_text), author=author,
                               reason=withdrawn, attachments=mail.attachments)
        notify.follow_up(session, self.settings, directory, ticket, notice,
                         reassigned=reassigned, lead_too=bool(withdrawn))

    def _context(self, session: Session, envelope: Envelope, mail: parse.ParsedMail,
                 is_reply: bool) -> tuple[MailContext, contacts_ops.Sender]:
        """The rules' view of the mail, and its sender (their contact, looked up once)."""
        sender = contacts_ops.sender(session, mail.from_addr)
        return build_context(
            self.settings, mail, envelope, is_reply=is_reply,
            previous_tickets=sender.previous_tickets, arrived_at=clock.now(), vip=sender.vip,
            organisation=contacts_ops.organisation(self.settings, mail.from_addr)), sender

    def _open(self, session: Session, mail: parse.ParsedMail, ctx: MailContext,
              decision: Decision, linked: int | None, reason: str, bounce: bool,
              known: Contact | None) -> Ticket:
        contact = store.contact_for(session, mail.from_addr, mail.from_name, known) \
            if mail.from_addr else None
        queue = ctx.routed_queue or ctx.default_queue  # rules change it below, with history
        ticket = store.create_ticket(session, subject=mail.subject, contact=contact,
                                     queue=queue, linked_ticket_id=linked,
                                     channel=channel.of(ctx))
        store.event(session, ticket, "created", actor=mail.from_addr or "unknown",
                    detail=f"via {ctx.envelope.route}; {reason}")
        channel.record(session, self.settings, ticket, ctx)
        self.apply_decision(session, ticket, decision)
        if bounce and not ticket.category:
            ticket.category = "bounce"
        return ticket

    def apply_decision(self, session: Session, ticket: Ticket, decision: Decision) -> bool:
        """Set what the rules decided, each change recorded with the rule that made it (and
        each rule that ran out of time); returns whether the assignee changed (on a
        follow-up, they must be told)."""
        by_rule = {h.field: h.rule for h in decision.hits}
        for timeout in decision.timeouts:  # an admin must see that a rule could not run
            store.event(session, ticket, "rule-timeout", actor=f"rule:{timeout.rule}",
                        detail=timeout.describe())
        for field in ("category", "priority", "queue"):
            value = getattr(decision, field)
            if value:
                store.change(session, ticket, field, value,
                             actor=f"rule:{by_rule.get(field, '(routing)')}")
        if decision.tags and not set(decision.tags) <= set(ticket.tags):
            old = ",".join(ticket.tags)
            ticket.tags = sorted({*ticket.tags, *decision.tags})
            store.event(session, ticket, "change", actor=f"rule:{by_rule.get('tags', '')}",
                        field="tags", old=old, new=",".join(ticket.tags))
        if decision.spam and not ticket.spam:
            ticket.spam = True
            store.event(session, ticket, "change", actor=f"rule:{by_rule.get('spam', '')}",
                        field="spam", old="false", new="true")
        if decision.assign is not None:
            name = store.resolve_assignee(session, decision.assign)
            if name:
                return store.change(
                    session, ticket, "assignee", name,
                    actor=f"rule:{by_rule.get('assignee', by_rule.get('assign', ''))}",
                    detail=decision.assign.describe())
        return False

    def _follow_up(self, session: Session, ticket: Ticket, mail: parse.ParsedMail,
                   reason: str) -> str:
        """Record the customer's reply and reopen; returns a withdrawn review ("" if none)."""
        actor = mail.from_addr or "unknown"
        store.event(session, ticket, "reply", actor=actor, detail=reason)
        withdrawn = withdraw_review(session, ticket, actor)
        if ticket.status in (Status.RESOLVED, Status.PENDING):
            store.change(session, ticket, "status", Status.OPEN, actor=actor,
                         detail="customer replied")
            ticket.resolved_at = None
        return withdrawn

    def _note_uninvited_cc(self, session: Session, ticket: Ticket, mail: parse.ParsedMail,
                           directory: Directory) -> None:
        """Record the people a follow-up copies who do not join the conversation (it
        proves no receipt of our mail, see thread.brings_people), so the agents know
        who the customer wanted on copy and why they are not."""
        left = [a for a in mail.cc if not self.settings.is_own_address(a)
                and not directory.is_agent_address(a)]
        if not left:  # nobody to look for among the people on the ticket
            return
        people = thread.participants(session, self.settings, int(ticket.id or 0))
        left = [a for a in left if a not in people]
        if left:
            shown = ", ".join(left[:10]) + (f" and {len(left) - 10} more" if len(left) > 10
                                            else "")
            store.event(session, ticket, "cc-not-admitted", actor=mail.from_addr or "unknown",
                        detail=f"not copied on replies: {shown} (the mail does not answer "
                               "one of ours, so it cannot bring people onto the ticket)")

    # -- quarantine --------------------------------------------------------------

    def _quarantine(self, session: Session, entry: Entry, reason: str) -> Outcome:
        """Hold the mail in the quarantine table, in a savepoint of the batch's transaction."""
        chash = parse.content_hash(entry.raw)
        with session.begin_nested():
            existing = queries.quarantined_hash(session, chash)
            if existing is not None:
                log.info("%s: duplicate of quarantined Q%s (%s)", entry.name, existing.id, reason)
                return Outcome("duplicate", detail=f"already quarantined as Q{existing.id}")
            raw_path = blobs.for_session(session, self.settings.data_dir).put(
                "quarantine", entry.raw, ".eml")
            row = Quarantine(reason=reason[:4000], route=entry.envelope.route,
                             mail_from=entry.envelope.mail_from,
                             rcpt_tos=list(entry.envelope.rcpt_tos), content_hash=chash,
                             raw_path=raw_path, size=len(entry.raw))
            session.add(row)
            session.flush()
            qid = row.id
        log.warning("quarantined %s as Q%s: %s", entry.name, qid, reason)
        return Outcome("quarantined", detail=f"Q{qid}: {reason}")

    def quarantine_shunted(self) -> int:
        """Move entries that crashed the daemon too often (spool bad/) into quarantine."""
        moved = 0
        for path in self.spool.bad_entries():
            entry = self.spool.read_bad(path)
            with blobsync.group() as files, session_scope(self.writer) as session:
                self._quarantine(session, entry,
                                 "crashed the daemon repeatedly while being processed")
                files.sync()
            self.spool.finish(entry)
            moved += 1
        return moved

    def release(self, quarantine_id: int) -> str:
        """Put a quarantined mail through the pipeline again; returns the spool entry name
        (quarantine_ops.NotHeld for an id not held)."""
        with session_scope(self.engine) as session:
            return quarantine_ops.release(session, self.settings.data_dir, self.spool,
                                          quarantine_id)
