"""Shared set-up for the knowledge base's tests: a desk daemon with [kb] enabled whose
mailed links point at its real public port, customers' and agents' mails, and reads
of the KB tables."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import httpx
from sqlmodel import select

from helpdesk.store.db import snapshot_scope
from helpdesk.store.kb_models import KbArticle
from tests import agent_mails
from tests.agent_desk import body, reply_to
from tests.helpers import engine_for, free_port, invoke_cli, make_mail, send, wait_until
from tests.web_helpers import Desk, follow_link

KB_LINK = re.compile(r"(http://\S+/kb/(\d+)\?t=[\w.-]+)")

PROBLEM = ("Printer prints blank pages",
           "Hello,\n\nsince this morning our office printer prints only blank pages. "
           "The toner is new and the test page is blank too.\n\nCall me on +49 30 1234567.\n\n"
           "Best regards,\nCarol Customer\n-- \nCarol Customer, ACME Ltd\n")
ANSWER = ("Hi,\n\nthe blank pages come from the power saving mode of the fuser. Switch "
          "the printer off for a minute, then print the test page again; if it is still "
          "blank, update the printer's firmware from its settings menu.\n")


def kb_desk(make_desk: Callable[..., Desk], **config: Any) -> Desk:
    """A desk daemon with the public KB; its public listener on a known port, so the
    links in acknowledgements ([http] public) lead to it."""
    port = free_port()
    return make_desk(http={"listen": "127.0.0.1:0", "public": f"127.0.0.1:{port}"},
                     kb={"enabled": True, **config.pop("kb", {})}, **config)


def customer_writes(desk: Desk, sender: str, subject: str, text: str) -> None:
    desk.deliver(make_mail(sender=sender, subject=subject, body=text),
                 sender=sender.split("<")[-1].rstrip(">"))


def notification(desk: Desk, agent: str, number: int) -> EmailMessage:
    """The newest notification to `agent` about ticket HD-`number`."""
    return wait_until(lambda: [m for m in desk.mails_to(agent, f"[HD-{number}]")][-1:],
                      timeout=15, what=f"a notification to {agent}")[0]


def agent_replies(desk: Desk, agent: str, note: EmailMessage, typed: str) -> None:
    """`agent` answers `note` from Gmail (to its signed reply address)."""
    to = reply_to(note)
    raw = agent_mails.gmail(typed=typed, sender=f"{agent.split('@')[0]} <{agent}>", to=to,
                            original=note)
    send(desk.daemon.port, raw, sender=agent, rcpts=[to])


def articles(desk: Desk) -> list[KbArticle]:
    with snapshot_scope(engine_for(desk.settings)) as session:
        return list(session.exec(select(KbArticle).order_by(KbArticle.id)).all())


def ack_links(desk: Desk, customer: str, number: int) -> list[tuple[str, int]]:
    """The KB links (url, article id) in the acknowledgement of HD-`number`."""
    acks = wait_until(lambda: desk.mails_to(customer, f"[HD-{number}]"), timeout=15,
                      what=f"the acknowledgement to {customer}")
    return [(url, int(n)) for url, n in KB_LINK.findall(body(acks[0]))]


def sign_in(desk: Desk, name: str) -> httpx.Client:
    """A client signed in as `name` by `helpdesk web login-link` (its link already has
    the desk's real port: kb_desk configures it)."""
    result = invoke_cli(desk.settings, "web", "login-link", name)
    assert result.exit_code == 0, result.output
    client = desk.client()
    answer = follow_link(client, result.stdout.splitlines()[0].replace(
        desk.settings.public_base_url(), desk.url))
    assert answer.status_code == 303, answer.text
    return client
