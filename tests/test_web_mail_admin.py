"""The admins' mail page (/desk/mail) against the running daemon, a real relay and a real
webhook receiver: mail that could not be read is released or discarded, an
acknowledgement the relay refused is sent again, a webhook delivery given up is posted
again; only admins see the page or may act, and every form needs its CSRF token."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest

from tests.agent_desk import relay_overrides
from tests.agents_toml import agent, agents_toml, team
from tests.api_helpers import Receiver
from tests.helpers import RelaySink, make_mail, outbox_rows, run_cli, send, wait_until
from tests.web_helpers import Desk, sign_in, submit

AGENTS = agents_toml(agent("alice", "support"), agent("lisa", "support", role="lead"),
                     agent("ada", "support", role="admin"), team("support", lead="lisa"))


def _row(page: httpx.Response, row_id: str) -> str:
    start = page.text.index(f'<tr id="{row_id}">')
    return page.text[start:page.text.index("</tr>", start)]


def test_an_admin_releases_discards_and_sends_again_from_the_mail_page(
        make_desk: Callable[..., Desk], relay: RelaySink, receiver: Receiver,
        caplog: pytest.LogCaptureFixture) -> None:
    receiver.gone = True
    desk = make_desk(agents=AGENTS, api={"enabled": True}, api_hook=[
        {"name": "crm", "url": receiver.url, "secret": "s", "events": ["ticket.created"]}],
        **relay_overrides(relay))
    for junk in (b"\x00 not a mail at all", b"\x00 nor this"):
        done = run_cli(desk.settings, "ingest", stdin=junk)
        assert done.returncode == 0, done.stderr
    relay.refuse_next("550 5.1.1 <carol@customer.test>: mailbox unavailable")
    send(desk.daemon.port, make_mail(subject="Printer <b>on</b> fire"))
    dead = wait_until(lambda: [r for r in outbox_rows(desk.settings) if r.status == "dead"],
                      timeout=20, what="the acknowledgement given up")[0]

    ada = sign_in(desk, "ada")
    wait_until(lambda: 'id="hook-' in ada.get("/desk/mail").text, timeout=20,
               what="the webhook delivery given up")
    page = ada.get("/desk/mail")
    assert page.status_code == 200
    assert '<a href="/desk/mail">Mail</a>' in page.text
    assert "cannot parse" in _row(page, "q1") and "cannot parse" in _row(page, "q2")
    mail = _row(page, f"mail-{dead.id}")
    assert "mailbox unavailable" in mail and '<a href="/desk/ticket/1">HD-1</a>' in mail
    assert "Printer &lt;b&gt;on&lt;/b&gt; fire" in mail  # the customer's words, escaped
    assert "ticket.created" in page.text and "HTTP 410" in page.text

    for name in ("alice", "lisa"):  # agents and leads: neither see nor act
        other = sign_in(desk, name)
        assert 'href="/desk/mail"' not in other.get("/desk/").text
        assert other.get("/desk/mail").status_code == 403
        refused = submit(other, "/desk/", "/desk/mail/outbox/retry", {"all": "1"})
        assert refused.status_code == 403
    no_token = ada.post("/desk/mail/outbox/retry", data={"all": "1"})
    assert no_token.status_code == 403
    assert [r.status for r in outbox_rows(desk.settings) if r.id == dead.id] == ["dead"]

    with caplog.at_level(logging.WARNING, logger="helpdesk.web.mail_admin"):
        released = submit(ada, "/desk/mail", "/desk/mail/quarantine/1/release", {})
        assert (released.status_code, released.headers["location"]) == (
            303, "/desk/mail?done=released")
        discarded = submit(ada, "/desk/mail", "/desk/mail/quarantine/2/discard",
                           {"reason": "line  noise"})
        assert discarded.headers["location"] == "/desk/mail?done=discarded"
        again = submit(ada, "/desk/mail", "/desk/mail/quarantine/2/discard", {})
        assert again.headers["location"] == "/desk/mail?done=gone"  # acted on already
        sent = submit(ada, "/desk/mail", "/desk/mail/outbox/retry", {"id": str(dead.id)})
        assert sent.headers["location"] == "/desk/mail?done=mail"
        receiver.gone = False  # the receiver is back
        posted = submit(ada, "/desk/mail", "/desk/mail/hooks/retry", {"all": "1"})
        assert posted.headers["location"] == "/desk/mail?done=hooks"
    logged = [r.getMessage() for r in caplog.records]
    assert "quarantine Q1 released by ada on the desk" in logged
    assert any(m.startswith("quarantine Q2 discarded by ada on the desk: line noise (")
               for m in logged)

    # released: through the pipeline again, which still cannot read it (a new entry)
    wait_until(lambda: 'id="q3"' in ada.get("/desk/mail").text, timeout=20,
               what="the released mail quarantined again")
    acks = wait_until(lambda: [r for r in relay.received if "carol@customer.test" in r.rcpt_tos],
                      timeout=20, what="the acknowledgement sent again")
    assert f"<{dead.message_id}>".encode() in acks[0].raw
    wait_until(lambda: receiver.events(), timeout=20, what="the event posted again")
    page = ada.get("/desk/mail?done=hooks")
    assert "Queued again: the webhook worker posts it within a second." in page.text
    assert 'id="q1"' not in page.text and 'id="q2"' not in page.text
    assert f'id="mail-{dead.id}"' not in page.text and 'id="hook-' not in page.text
    assert "None: every mail was sent, or is still being tried." in page.text
    assert ada.get("/desk/mail?done=<script>").text.count('role="status"') == 0


def test_the_ticket_page_says_whether_each_reply_left(
        make_desk: Callable[..., Desk], relay: RelaySink) -> None:
    """Agents see on the ticket that the relay refused their reply, not only admins."""
    # a deferred mail waits its backoff: long enough to be seen waiting
    desk = make_desk(agents=AGENTS, **relay_overrides(
        relay, outgoing={"backoff_base": 600.0, "backoff_max": 600.0}))
    def settled() -> bool:
        """Nothing on its way out: the relay's next refusal is for the next mail queued
        (the agents' notices of a new ticket or a reply leave after it)."""
        rows = outbox_rows(desk.settings)
        return bool(rows) and all(r.status in ("sent", "dead") for r in rows)

    send(desk.daemon.port, make_mail(subject="Printer on fire"))
    wait_until(settled, timeout=20, what="the ack and the agents' notices sent")
    relay.refuse_next("550 5.1.1 <carol@customer.test>: mailbox unavailable")
    for text in ("On our way.", "Here we are."):
        done = run_cli(desk.settings, "tickets", "reply", "HD-1", "--as", "alice", "-m", text)
        assert done.returncode == 0, done.stderr
        wait_until(settled, timeout=20, what="the reply tried")
    relay.refuse_next("451 4.3.0 try again later")
    done = run_cli(desk.settings, "tickets", "reply", "HD-1", "--as", "alice", "-m", "Soon.")
    assert done.returncode == 0, done.stderr
    wait_until(lambda: any(r.kind == "agent-reply" and r.status == "queued" and r.attempts
                           for r in outbox_rows(desk.settings)), timeout=20,
               what="the third reply deferred")
    alice = sign_in(desk, "alice")
    page = alice.get("/desk/ticket/1").text
    refused, taken, deferred = (page.index(t) for t in ("On our way.", "Here we are.", "Soon."))
    assert '<p class="delivery dead">Not delivered: relay said 550 5.1.1 ' \
           '&lt;carol@customer.test&gt;: mailbox unavailable.' in page[refused:taken]
    assert '<p class="delivery sent">Handed to the mail relay ' in page[taken:deferred]
    assert '<p class="delivery waiting">Not sent yet: tried 1 time, last answer: relay ' \
           'said 451 4.3.0 try again later; it is tried again on its own.</p>' \
           in page[deferred:]
    # and at the top: the customer's address refused our mail (the deferred one is not
    # given up, so it is not listed)
    start = page.index('<section class="undelivered"')
    banner = page[start:page.index("</section>", start)]
    assert "<li>a reply, " in banner and banner.count("<li>") == 1
    assert "relay said 550 5.1.1 &lt;carol@customer.test&gt;: mailbox unavailable" in banner
