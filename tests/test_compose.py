"""Mail we compose, as its readers parse it: the header values build() keeps as text
(outgoing.compose._Plain) are written exactly as the stdlib's header registry writes
them, and an acknowledgement reads back the same after the change."""

from __future__ import annotations

import email
import email.policy
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.outgoing import compose as mailout
from helpdesk.outgoing import portal_links
from helpdesk.spool import Envelope, Spool
from tests.helpers import make_mail, outbox_rows, run_pipeline

SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
POLICIES = (mailout.SMTP_POLICY, mailout.POLICY, mailout.SMTP_POLICY.clone(max_line_length=30))

atext = st.text(st.sampled_from("abcXYZ019!#$%&'*+/=?^_`{|}~-"), min_size=1, max_size=12)
dot_atom = st.lists(atext, min_size=1, max_size=3).map(".".join)
host = st.lists(st.text(st.sampled_from("abz09-"), min_size=1, max_size=8), min_size=1,
                max_size=3).map(".".join)
addr_spec = st.builds(lambda local, domain: f"{local}@{domain}", dot_atom, host)
mailbox = st.one_of(addr_spec, st.builds(lambda words, a: f"{' '.join(words)} <{a}>",
                                         st.lists(atext, min_size=1, max_size=3), addr_spec))
printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=90)
when = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1),
                    timezones=st.just(UTC))
VALUES = {
    "address": st.one_of(st.lists(mailbox, min_size=1, max_size=3).map(", ".join), printable),
    "words": printable,
    "message-id": st.one_of(st.builds(lambda a, b: f"<{a}@{b}>", dot_atom, dot_atom), printable),
    "date": st.one_of(when.map(format_datetime), printable,
                      when.map(lambda d: format_datetime(d).replace(", 0", ", "))),
    "content-type": st.one_of(
        st.sampled_from(['text/plain; charset="utf-8"', "text/html", "multipart/mixed",
                         'multipart/alternative; boundary="=_hd0123456789abcdef01234567"',
                         "application/pdf", 'a/b; x="q\\"uote"', "a/b;; c=", "a/b; c=d e"]),
        printable),
    "other": printable,
}
KIND = {"from": "address", "to": "address", "cc": "address", "reply-to": "address",
        "subject": "words", "auto-submitted": "words", "x-auto-response-suppress": "words",
        "in-reply-to": "words", "references": "words", "message-id": "message-id",
        "date": "date", "content-type": "content-type", "mime-version": "other",
        "content-transfer-encoding": "other"}


@st.composite
def headers(draw: st.DrawFn) -> tuple[str, str]:
    name = draw(st.sampled_from(sorted(KIND)))
    return name.title(), draw(VALUES[KIND[name]])


@SETTINGS
@given(headers())
def test_a_value_kept_plain_is_written_as_the_header_registry_writes_it(
    header: tuple[str, str],
) -> None:
    name, value = header
    try:
        made = mailout.BUILD_POLICY.header_factory(name, value)
    except Exception:  # the stdlib's parser fails on a few values ("a <"): as it did
        with pytest.raises(Exception):  # noqa: B017
            mailout._REGISTRY(name, value)
        return
    if not isinstance(made, mailout._Plain):
        return  # parsed by the registry, as it always was
    parsed = mailout._REGISTRY(name, value)
    for policy in POLICIES:  # the narrow one folds: the registry's header does it then
        assert made.fold(policy=policy) == parsed.fold(policy=policy)
    if name.lower() in ("to", "cc"):
        assert mailout._addr_specs(made) == [a.addr_spec for a in parsed.addresses]


@pytest.mark.parametrize(("name", "value"), [
    ("From", "Bench Helpdesk <support@example.test>"),
    ("To", "carol@customer.test, o'neil+x@mail.customer.test"),
    ("Date", format_datetime(datetime(2026, 12, 6, 9, 5, 1, tzinfo=UTC))),
    ("Message-ID", "<179655741424.14669.11650117455271390293.hd-12.new@example.test>"),
    ("Content-Type", 'multipart/alternative; boundary="=_hd0123456789abcdef01234567"'),
    ("Subject", "[HD-12] Printer on fire"),
])
def test_what_build_writes_for_a_usual_mail_is_kept_plain(name: str, value: str) -> None:
    assert isinstance(mailout.BUILD_POLICY.header_factory(name, value), mailout._Plain)


@pytest.mark.parametrize(("name", "value"), [
    ("Date", "Mon, 06 Dec 2026 09:05:01 +0000"),  # a Sunday: the registry writes "Sun"
    ("Subject", "=?utf-8?q?decoded_by_the_registry?="),
    ("Subject", "two  spaces"),
    ("Content-Type", "a/b;; c="),
    ("Content-Disposition", "attachment"),  # EmailMessage.is_attachment reads it parsed
])
def test_a_value_the_registry_would_change_is_parsed_by_it(name: str, value: str) -> None:
    assert not isinstance(mailout.BUILD_POLICY.header_factory(name, value), mailout._Plain)


SUBJECT = "Drucker brennt – Grüße aus Köln, die Heizung ist auch kaputt und kalt, bitte"
NAME = "Zoë Ångström-Øresund von und zu Überlänge-Nachname-mit-sehr-vielen-Teilen"


def _build(settings: Settings, policy: email.policy.Policy, monkeypatch: pytest.MonkeyPatch,
           ) -> bytes:
    """An acknowledgement built as acknowledge() builds it, under `policy`, with the
    same Message-ID and boundary each time."""
    monkeypatch.setattr(mailout, "BUILD_POLICY", policy)
    random.seed(18)
    context = {"ticket_id": "HD-7", "subject": SUBJECT, "tagged_subject": f"[HD-7] {SUBJECT}",
               "customer_name": NAME, "customer": "zoe@customer.test",
               "helpdesk_name": settings.helpdesk.name, "queue": "support",
               "priority": "normal", "category": "", "status_url": "", "kb_articles": []}
    subject, text, html = mailout.render(settings, "ack", context)
    msg = mailout.build(settings, to=[f'"{NAME}" <zoe@customer.test>'], subject=subject,
                        text=text, html=html, reply_to="support+hd-7-abc@example.test",
                        in_reply_to="first@customer.test",
                        references=["zero@customer.test", "first@customer.test"],
                        id_hint="hd-7")
    del msg["Message-ID"]
    msg["Message-ID"] = "<fixed.hd-7@example.test>"
    return mailout.wire_bytes(msg)


def test_an_acknowledgement_is_the_same_bytes_as_with_every_header_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(helpdesk={"name": "Kundendienst Müller & Söhne GmbH (Köln)",
                                  "address": "support@example.test"})
    clock.freeze(datetime(2026, 12, 6, 9, 5, 1, tzinfo=UTC))
    try:
        plain = _build(settings, mailout.BUILD_POLICY, monkeypatch)
        parsed = _build(settings, mailout.POLICY, monkeypatch)
    finally:
        clock.set_source(None)
    assert plain == parsed
    head = plain.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and max(len(line) for line in head.split(b"\r\n")) <= 78
    msg = email.message_from_bytes(plain, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["Subject"] == f"[HD-7] {SUBJECT}"
    assert b"=?utf-8?" in head  # RFC 2047 encoded words, folded
    [to] = msg["To"].addresses
    assert to.addr_spec == "zoe@customer.test"
    # the stdlib folds a long encoded display name with a space where it splits a word
    # ("Überlän ge"), with or without the plain values (the bytes are equal above)
    assert to.display_name.replace(" ", "") == NAME.replace(" ", "")
    [sender] = msg["From"].addresses
    assert sender.display_name == "Kundendienst Müller & Söhne GmbH (Köln)"
    assert msg["References"] == "<zero@customer.test> <first@customer.test>"
    assert msg["In-Reply-To"] == "<first@customer.test>"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    # the greeting's line is longer than 78 bytes: quoted-printable, as the stdlib picks
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert html["Content-Transfer-Encoding"] == "quoted-printable"
    assert f"Hello {NAME}," in text.get_content()
    assert SUBJECT in text.get_content() and SUBJECT in html.get_content()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_acknowledgement_of_a_non_ascii_mail_reads_back_as_its_customer_wrote_it(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    spool = Spool(settings.data_dir / "spool")
    mail = make_mail(sender=f"{NAME} <zoe@customer.test>", subject=SUBJECT,
                     message_id="<first@customer.test>", body="Es ist kalt.")
    spool.put(mail.as_bytes(), Envelope("smtp", "zoe@customer.test",
                                        ("support@example.test",)))
    [outcome] = run_pipeline(settings, spool)
    assert outcome.kind == "stored"
    [row] = [r for r in outbox_rows(settings) if r.recipient == "zoe@customer.test"]
    assert row.rcpt_tos == ["zoe@customer.test"]
    ack = email.message_from_bytes(row.raw, policy=email.policy.default)
    assert isinstance(ack, EmailMessage)
    assert ack["Subject"] == f"[HD-1] {SUBJECT}"
    assert ack["To"] == "zoe@customer.test"
    assert ack["In-Reply-To"] == ack["References"] == "<first@customer.test>"
    assert ack["Auto-Submitted"] == "auto-replied"
    assert abs(ack["Date"].datetime - clock.now()) < timedelta(minutes=5)
    text = ack.get_body(("plain",))
    assert text is not None
    assert f"Hello {NAME}," in text.get_content()
    assert portal_links.ticket_url(settings, 1) in text.get_content()
