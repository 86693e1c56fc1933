"""Webhooks ([[api_hook]], outgoing/hooks.py) against a real HTTP receiver on loopback:
events for a new ticket, a reply and a status change, each signed with the hook's
secret, retried after the receiver fails, and listed by `helpdesk api hooks log`."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from helpdesk.outgoing.hooks import sign
from tests.api_helpers import Receiver, api_client, api_desk, create_ticket, make_token
from tests.helpers import invoke_cli, status_rows, wait_until
from tests.web_helpers import Desk

SECRET = "hook-secret"


def test_events_are_signed_retried_and_logged(make_desk: Callable[..., Desk],
                                              receiver: Receiver) -> None:
    receiver.fail = 1  # the first try of the first event fails: it must come again
    desk = api_desk(make_desk, api={"hook_backoff_max": "1s"},
                    api_hook=[{"name": "crm", "url": receiver.url, "secret": SECRET}])
    alice = api_client(desk, make_token(desk, "alice"))
    number = create_ticket(alice)
    tag = alice.get(f"/tickets/{number}").headers["etag"]
    # refused (an unknown command beside it): rolled back, so no status event either
    refused = alice.post(f"/tickets/{number}/commands", headers={"If-Match": tag},
                         json={"commands": ["#status pending", "#nosuch"]})
    assert refused.status_code == 422
    answer = alice.post(f"/tickets/{number}/reply", headers={"If-Match": tag},
                        json={"text": "On it.", "close": True})
    assert answer.status_code == 200, answer.text

    def statuses() -> list[tuple[str, str]]:
        return [(e["old"], e["new"]) for e in receiver.events()
                if e["event"] == "ticket.status_changed"]
    # deliveries may arrive in any order: wait for the last change, then for the rest
    wait_until(lambda: ("open", "resolved") in statuses(), timeout=30,
               what="the resolution's event")
    wait_until(lambda: {"ticket.created", "ticket.replied"}
               <= {e["event"] for e in receiver.events()}, timeout=30,
               what="the created and replied events")
    events = receiver.events()
    created = [e for e in events if e["event"] == "ticket.created"]
    assert len(created) == 1 and created[0]["ticket"]["id"] == number  # retried, once
    replied = next(e for e in events if e["event"] == "ticket.replied")
    assert replied["by"] == "agent" and replied["actor"] == "alice"
    assert all(new != "pending" for _, new in statuses())  # the refused #status never was
    for headers, body in receiver.got:
        expected = sign(SECRET.encode(), headers["x-helpdesk-timestamp"], body)
        assert hmac.compare_digest(headers["x-helpdesk-signature"], expected)
        assert expected == "sha256=" + hmac.new(
            SECRET.encode(), headers["x-helpdesk-timestamp"].encode() + b"." + body,
            hashlib.sha256).hexdigest()
    deliveries = [h["x-helpdesk-delivery"] for h, _ in receiver.got]
    assert len(deliveries) == len(set(deliveries))  # never one delivery twice

    log = invoke_cli(desk.settings, "api", "hooks", "log", "--hook", "crm")
    assert log.exit_code == 0, log.output
    first = log.output.strip().splitlines()[-1]  # the oldest: the created event
    assert "ticket.created" in first and "sent" in first and "2 tries" in first


def test_a_receiver_that_is_gone_is_given_up_and_posted_again_when_asked(
        make_desk: Callable[..., Desk], receiver: Receiver) -> None:
    desk = api_desk(make_desk, helpdesk={"admins": ["root@example.test"]}, api_hook=[
        {"name": "old", "url": receiver.url.replace("/events", "/nothing-here"),
         "secret": SECRET, "events": ["ticket.created"]}])
    receiver.gone = True
    alice = api_client(desk, make_token(desk, "alice"))
    number = create_ticket(alice)

    def log() -> str:
        done = invoke_cli(desk.settings, "api", "hooks", "log")
        assert done.exit_code == 0, done.output
        return str(done.output)
    wait_until(lambda: "dead" in log() and "HTTP 410" in log(), timeout=20,
               what="the delivery given up")
    delivery = log().split("\t")[0]
    alert = wait_until(lambda: desk.mails_to("root@example.test", "webhook deliveries given up"),
                       timeout=20, what="the admins told")[0]
    assert f"(ids {delivery} to old)" in alert.get_body(("plain",)).get_content()
    status = invoke_cli(desk.settings, "status")
    assert status_rows(status.output)["webhooks"] == (
        "given up", "1 dead; `helpdesk api hooks log --status dead`")
    dead_only = invoke_cli(desk.settings, "api", "hooks", "log", "--status", "dead")
    assert dead_only.output.startswith(f"{delivery}\told\tticket.created\t")
    assert invoke_cli(desk.settings, "api", "hooks", "log", "--status", "sent").output == ""

    receiver.gone = False  # the receiver is back
    refused = invoke_cli(desk.settings, "api", "hooks", "retry", delivery, "999")
    assert refused.exit_code == 1
    assert refused.output.splitlines() == [f"queued again: {delivery}", "Error: not given "
                                           "up, left as they are: 999"]
    wait_until(lambda: receiver.events(), timeout=20, what="the event posted again")
    assert [(e["event"], e["ticket"]["id"]) for e in receiver.events()] == [
        ("ticket.created", number)]
    assert "\tsent\t2 tries\t" in log()
    again = invoke_cli(desk.settings, "api", "hooks", "retry", "--all-dead", "--hook", "old")
    assert (again.exit_code, again.output.strip()) == (0, "no given-up delivery")


def test_a_claimed_delivery_is_not_posted_twice_and_a_crash_is_recovered(
        make_settings: Callable[..., Any], receiver: Receiver) -> None:
    """Two workers (two daemons) on one database: a delivery one has claimed is not the
    other's while its lease runs; a worker that died after claiming (before posting)
    leaves it to be posted once the lease is over, and then exactly once."""
    from datetime import timedelta

    from sqlmodel import Session, select

    from helpdesk import clock
    from helpdesk.outgoing.hooks import LEASE, HookWorker
    from helpdesk.store import db
    from helpdesk.store.api_models import HookDelivery
    from helpdesk.store.models import Ticket
    from helpdesk.store.tickets import event
    from tests.helpers import engine_for

    settings = make_settings({"api_hook": [{"name": "crm", "url": receiver.url,
                                            "secret": SECRET}]})
    db.upgrade(settings.database_url)
    engine = engine_for(settings)
    with db.session_scope(engine) as session:  # a history event, as any door writes one
        t = Ticket(subject="s")
        session.add(t)
        session.flush()
        event(session, t, "created", actor="carol@customer.test")

    crashed, other = HookWorker(settings, engine), HookWorker(settings, engine)
    crashed.fan_out()
    assert crashed._claim() is not None  # ...and the process dies before posting
    assert other.deliver_due() == 0 and receiver.got == []  # leased: not the other's
    start = clock.now()
    clock.freeze(start + LEASE + timedelta(seconds=1))
    assert other.deliver_due() == 1
    assert other.deliver_due() == 0 and len(receiver.got) == 1
    with Session(engine) as session:
        row = session.exec(select(HookDelivery)).one()
        assert (row.status, row.attempts) == ("sent", 2)


def test_events_no_hook_wants_are_not_kept(make_settings: Any, receiver: Receiver) -> None:
    """Every change records a webhook event in its transaction; the fan-out keeps only
    those a hook wants, so without hooks the table does not grow with every change."""
    from sqlmodel import Session, select

    from helpdesk.outgoing.hooks import HookWorker
    from helpdesk.store import db
    from helpdesk.store.api_models import HookDelivery, HookEvent
    from helpdesk.store.models import Ticket
    from helpdesk.store.tickets import change, event
    from tests.helpers import engine_for

    def changes(settings: Any) -> None:
        db.upgrade(settings.database_url)
        with db.session_scope(engine_for(settings)) as session:
            t = Ticket(subject="s")
            session.add(t)
            session.flush()
            event(session, t, "created", actor="carol@customer.test")
            change(session, t, "status", "pending", actor="alice")
            change(session, t, "priority", "high", actor="alice")  # no event kind of its own

    def kinds(settings: Any) -> tuple[list[str], list[str]]:
        with Session(engine_for(settings)) as session:
            events = [e.kind for e in session.exec(select(HookEvent)).all()]
            deliveries = [d.hook for d in session.exec(select(HookDelivery)).all()]
        return events, deliveries

    none = make_settings({})
    changes(none)
    assert kinds(none)[0] == ["ticket.created", "ticket.status_changed"]
    HookWorker(none, engine_for(none)).deliver_due()
    assert kinds(none) == ([], [])

    some = make_settings({"api_hook": [{"name": "crm", "url": receiver.url, "secret": SECRET,
                                        "events": ["ticket.created"]}]})
    changes(some)
    HookWorker(some, engine_for(some)).fan_out()
    assert kinds(some) == (["ticket.created"], ["crm"])


def test_the_daemons_engine_records_only_the_events_some_hook_is_sent(
        make_settings: Any, receiver: Receiver) -> None:
    """The daemon's engine knows the configured hooks' events (Settings.
    hook_events_wanted): a mail storm without hooks writes no webhook events at all,
    and with a hook only the kinds it is sent; the history is whole either way."""
    from sqlmodel import Session, select

    from helpdesk.mail.parse import parse
    from helpdesk.pipeline import Pipeline
    from helpdesk.spool import Envelope, Spool
    from helpdesk.store import db
    from helpdesk.store.api_models import HookEvent
    from helpdesk.store.models import Event
    from tests.helpers import make_mail

    def mails(settings: Any, tag: str) -> tuple[list[str], list[str]]:
        """A new mail and its reply; the history and webhook event kinds they wrote."""
        db.upgrade(settings.database_url)
        engine = db.engine_for(settings)
        spool = Spool(settings.data_dir / "spool")
        first = make_mail(message_id=f"<first-{tag}@customer.test>").as_bytes()
        spool.put(first, Envelope(route="smtp", mail_from="carol@customer.test",
                                  rcpt_tos=("support@example.test",)))
        reply = make_mail(subject="Re: it", message_id=f"<second-{tag}@customer.test>",
                          in_reply_to=f"<first-{tag}@customer.test>").as_bytes()
        spool.put(reply, Envelope(route="smtp", mail_from="carol@customer.test",
                                  rcpt_tos=("support@example.test",)))
        outcomes = Pipeline(settings, engine, spool, reply_hooks=[]).drain()
        assert [o.kind for o in outcomes] == ["stored", "stored"]
        assert parse(reply).in_reply_to == (f"first-{tag}@customer.test",)
        try:
            with Session(engine) as session:
                return ([e.kind for e in session.exec(select(Event)).all()],
                        [e.kind for e in session.exec(select(HookEvent)).all()])
        finally:
            engine.dispose()

    history, hook_events = mails(make_settings({}), "none")
    assert {"created", "ack", "reply"} <= set(history)
    assert hook_events == []

    crm = {"name": "crm", "url": receiver.url, "secret": SECRET, "events": ["ticket.replied"]}
    history, hook_events = mails(make_settings({"api_hook": [crm]}), "some")
    assert {"created", "ack", "reply"} <= set(history)
    assert hook_events == ["ticket.replied"]
