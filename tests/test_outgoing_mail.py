"""Mail we send, as the people who get it see it: the local maildir a mail client reads,
a reply released after review, and the agent's sign-off the customer gets. Real SMTP
in, the RelaySink relay (or the local maildir) out."""

from __future__ import annotations

import email
import email.policy
import mailbox
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest

from helpdesk.config.settings import Settings
from tests import agent_mails
from tests.agent_desk import body, msgid, reply_to, wait_mails_to
from tests.helpers import (
    DaemonThread,
    RelaySink,
    make_mail,
    outbox_rows,
    send,
    wait_ticket,
    wait_until,
)

CAROL = "carol@customer.test"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_local_maildir_holds_mail_with_lf_line_endings_as_mail_clients_expect(
    make_settings: Callable[..., Settings], start_daemon: Callable[..., DaemonThread],
) -> None:
    settings = make_settings()  # no relay_host: outgoing mail goes to data_dir/maildir
    daemon = start_daemon(settings)
    send(daemon.port, make_mail(message_id="<local@customer.test>", body="Help!\n" * 3))
    wait_until(lambda: [r.status for r in outbox_rows(settings)] == ["sent"], timeout=15,
               what="the ack in the maildir")

    [path] = list((settings.data_dir / "maildir" / "new").iterdir())
    content = path.read_bytes()
    assert b"\r" not in content
    assert content.startswith(b"X-Helpdesk-Envelope-To: carol@customer.test\n")
    # what a mail client makes of it: the headers and body it would quote in a reply
    [ack] = list(mailbox.Maildir(settings.data_dir / "maildir", create=False,
                                 factory=_as_email_message))
    assert ack["In-Reply-To"] == "<local@customer.test>"
    text = body(ack)
    assert "HD-1" in text and "\r" not in text


def _as_email_message(fh: Any) -> Any:
    return email.message_from_binary_file(fh, policy=email.policy.default)


@pytest.fixture
def review_queue() -> dict[str, Any]:
    return {"queue": {"support": {"team": "support", "review": True}}}


def test_a_reply_released_after_review_is_threaded_like_a_normal_reply(
    desk_settings: Callable[..., Settings], relay: RelaySink,
    start_daemon: Callable[..., DaemonThread], review_queue: dict[str, Any],
) -> None:
    settings = desk_settings(**review_queue)
    daemon = start_daemon(settings)
    # Gmail's Message-IDs are long: too long for one folded header line
    gmail_id = "<CAH+w=7ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw_xyz0123@mail.gmail.com>"
    first = make_mail(body="Help, the printer is on fire.", message_id=gmail_id,
                      subject="Drucker brennt – Grüße")
    send(daemon.port, first)
    note = wait_mails_to(relay, "alice@staff.test", 1)[0]

    send(daemon.port, agent_mails.gmail(
        typed="Hi Carol,\n\nplease switch it off.", sender="alice@staff.test",
        to=reply_to(note), original=note), sender="alice@staff.test", rcpts=[reply_to(note)])
    normal = wait_mails_to(relay, CAROL, 2)[1]
    assert normal["In-Reply-To"] == f"<{msgid(first)}>"

    send(daemon.port, agent_mails.gmail(
        typed="#status resolved\n\nThe fuser was replaced.", sender="alice@staff.test",
        to=reply_to(note), original=note), sender="alice@staff.test", rcpts=[reply_to(note)])
    review = wait_mails_to(relay, "lisa@staff.test", 2)[1]
    send(daemon.port, agent_mails.thunderbird(
        typed="#approve", sender="lisa@staff.test", to=reply_to(review), original=review),
        rcpts=[reply_to(review)], sender="lisa@staff.test")

    released = wait_mails_to(relay, CAROL, 3)[2]
    assert "The fuser was replaced." in body(released)
    assert released["Message-ID"] != normal["Message-ID"]
    # a mail client matches the ids byte for byte: they must be on the wire as they are
    # (never RFC 2047 encoded words), in the released reply as in the normal one
    for sent in (normal, released):
        assert threading_headers(relay, sent) == {"In-Reply-To": gmail_id,
                                                  "References": gmail_id}
        # and the same header encoding: RFC 2047 for a relay without SMTPUTF8
        assert wire_head(relay, sent).isascii(), wire_head(relay, sent)
        assert sent["Subject"] == "Re: [HD-1] Drucker brennt – Grüße"
    wait_ticket(settings, 1, lambda t: t["status"] == "resolved", "resolved")


def wire_head(relay: RelaySink, msg: EmailMessage) -> bytes:
    """The header block of `msg` as the relay received it."""
    [wire] = [r.raw for r in relay.received if msgid(msg).encode() in r.raw]
    return wire.split(b"\r\n\r\n", 1)[0]


def threading_headers(relay: RelaySink, msg: EmailMessage) -> dict[str, str]:
    """In-Reply-To and References as the bytes on the wire have them (unfolded)."""
    raw = email.message_from_bytes(wire_head(relay, msg), policy=email.policy.compat32)
    return {name: " ".join(str(raw[name]).split()) for name in ("In-Reply-To", "References")}


AGENTS_WITH_NAMES = """
[[agent]]
name = "alice"
display_name = "Alice Agent"
email = "alice@staff.test"
teams = ["support"]

[[agent]]
name = "bob"
email = "bob@staff.test"
teams = ["support"]
"""


@pytest.fixture
def named_desk(desk_settings: Callable[..., Settings],
               start_daemon: Callable[..., DaemonThread]) -> tuple[Settings, DaemonThread]:
    settings = desk_settings(AGENTS_WITH_NAMES)
    return settings, start_daemon(settings)


SIGN_OFFS = [
    (agent_mails.gmail, {"lang": "en"}, "Best regards\nAlice"),
    (agent_mails.outlook, {"lang": "de"}, "Mit freundlichen Grüßen\nAlice Agent"),
    # Thunderbird adds an "-- " signature below the sign-off: that still goes
    (agent_mails.thunderbird, {}, "Mit freundlichen Grüßen\nAlice Agent"),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("client", "kwargs", "sign_off"), SIGN_OFFS,
                         ids=["gmail-en", "outlook-de", "thunderbird-de"])
def test_the_customer_gets_the_agents_sign_off_and_display_name(
    named_desk: tuple[Settings, DaemonThread], relay: RelaySink, client: Any,
    kwargs: dict[str, str], sign_off: str,
) -> None:
    _, daemon = named_desk
    send(daemon.port, make_mail())
    note = wait_mails_to(relay, "alice@staff.test", 1)[0]
    typed = "Hello Carol,\n\nplease restart the printer."
    send(daemon.port, client(typed=f"{typed}\n\n{sign_off}", sender="alice@staff.test",
                             to=reply_to(note), original=note, **kwargs),
         sender="alice@staff.test", rcpts=[reply_to(note)])

    answer = wait_mails_to(relay, CAROL, 2)[1]
    text, _, footer = body(answer).partition("\n-- \n")
    assert text.strip() == f"{typed}\n\n{sign_off}"
    assert "Team Lead" not in body(answer)  # Thunderbird's signature after "-- "
    assert footer.splitlines()[0] == "Alice Agent"
    assert answer["From"].addresses[0].display_name == "Alice Agent (Example Helpdesk)"
    assert answer["From"].addresses[0].addr_spec == "support@example.test"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_agent_without_a_display_name_signs_with_the_login(
    named_desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    _, daemon = named_desk
    send(daemon.port, make_mail())
    note = wait_mails_to(relay, "bob@staff.test", 1)[0]
    send(daemon.port, agent_mails.gmail(
        typed="Hi Carol,\n\nfixed.\n\nCheers,\nBob", sender="bob@staff.test",
        to=reply_to(note), original=note), sender="bob@staff.test", rcpts=[reply_to(note)])
    answer = wait_mails_to(relay, CAROL, 2)[1]
    assert body(answer).partition("\n-- \n")[2].splitlines()[0] == "bob"
    assert answer["From"].addresses[0].display_name == "bob (Example Helpdesk)"


def mail_with_attachments(files: list[tuple[str, str, int]], **kwargs: Any) -> EmailMessage:
    msg = make_mail(**kwargs)
    for filename, ctype, size in files:
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(bytes(i % 251 for i in range(size)), maintype=maintype,
                           subtype=subtype, filename=filename)
    return msg


SMALL_ATTACHMENTS = {"notify": {"attach_max_bytes": 50_000, "attach_total_bytes": 80_000}}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("desk", [SMALL_ATTACHMENTS], indirect=True)
def test_agents_get_small_attachments_and_a_list_of_all_of_them(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    _, daemon = desk
    send(daemon.port, mail_with_attachments([
        ("screenshot.png", "image/png", 30_000),
        ("error.log", "text/plain", 40_000),
        ("invoice.pdf", "application/pdf", 20_000),  # small, but 90 KB together is too much
        ("video.mp4", "video/mp4", 200_000),  # larger than one may be
    ], body="The printer shows an error, see the screenshot."))

    note = wait_mails_to(relay, "alice@staff.test", 1)[0]
    attached = {p.get_filename(): p.get_content_type() for p in note.iter_attachments()}
    assert attached == {"screenshot.png": "image/png", "error.log": "text/plain"}
    text = body(note)
    assert "The printer shows an error" in text
    for line in ("screenshot.png  image/png  29 KB  attached",
                 "error.log  text/plain  39 KB  attached",
                 "invoice.pdf  application/pdf  20 KB  kept on the ticket",
                 "video.mp4  video/mp4  195 KB  kept on the ticket"):
        assert line in text, text
    assert "helpdesk tickets show HD-1" in text

    # a customer's follow-up with a screenshot: the agents see that one too
    send(daemon.port, mail_with_attachments(
        [("second.png", "image/png", 10_000)], subject="Re: [HD-1] Printer on fire",
        body="Another one."))
    told = wait_mails_to(relay, "alice@staff.test", 2)[1]
    assert told["Subject"].startswith("Customer replied: [HD-1]")
    assert [p.get_filename() for p in told.iter_attachments()] == ["second.png"]
    assert "second.png  image/png  10 KB  attached" in body(told)


HUGE_INTAKE = {"smtp": {"max_message_size": 48 * 1024 * 1024}}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("desk", [HUGE_INTAKE], indirect=True)
def test_a_24_mb_body_is_cut_in_notifications_and_outbox_rows_stay_small(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    settings, daemon = desk
    line = "ERROR printer spooler stalled; " * (24 * 1024 * 1024 // 31)  # one 24 MB line
    send(daemon.port, make_mail(body=line))

    notes = {name: wait_mails_to(relay, f"{name}@staff.test", 1, timeout=120)[0]
             for name in ("alice", "bob", "lisa")}
    rows = outbox_rows(settings)
    assert len(rows) == 4  # the acknowledgement and three notifications
    assert max(len(r.raw) for r in rows) < 256 * 1024, [len(r.raw) for r in rows]
    text = body(notes["alice"])
    assert "ERROR printer spooler stalled;" in text
    more = round((len(line) - 64 * 1024) / 1024)
    assert f"cut, {more} KB more, see HD-1" in text
    assert "helpdesk tickets show HD-1" in text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_outgoing_mail_exceeds_the_maximum_what_exceeds_it_is_cut_with_a_note(
    desk_settings: Callable[..., Settings], relay: RelaySink,
    start_daemon: Callable[..., DaemonThread],
) -> None:
    daemon = start_daemon(desk_settings(outgoing={"max_message_size": 64 * 1024}))
    send(daemon.port, make_mail())
    note = wait_mails_to(relay, "alice@staff.test", 1)[0]
    pasted = "\n".join(f"log line {i}: spooler restarted" for i in range(6000))  # ~190 KB
    send(daemon.port, agent_mails.gmail(
        typed=f"Hi Carol,\n\nhere is the log:\n{pasted}", sender="alice@staff.test",
        to=reply_to(note), original=note,
        attachments=(("trace.bin", "application/octet-stream", b"\x00" * 100_000),)),
        sender="alice@staff.test", rcpts=[reply_to(note)])

    answer = wait_mails_to(relay, CAROL, 2)[1]
    [wire] = [r.raw for r in relay.received if msgid(answer).encode() in r.raw]
    assert len(wire) <= 64 * 1024
    text = body(answer)
    assert text.startswith("Hi Carol,\n\nhere is the log:\nlog line 0: spooler restarted")
    assert "log line 5999" not in text
    assert "KB more not sent: this mail would exceed 64 KB" in text
    assert "trace.bin (98 KB) not attached: this mail would exceed 64 KB" in text
    assert list(answer.iter_attachments()) == []


def test_an_attachment_whose_type_is_no_content_type_goes_out_as_octet_stream() -> None:
    from helpdesk.outgoing import compose as mailout

    msg = mailout.build(Settings(), to=["carol@customer.test"], subject="Re: files",
                        text="See attached.",
                        attachments=[("shot.png", "image/png\r\nBcc: eve@evil.test", b"png")])
    wire = mailout.wire_bytes(msg)
    assert [p.get_content_type() for p in msg.iter_attachments()] == [
        "application/octet-stream"]
    assert b"eve@evil.test" not in wire


DESK_ON = {**SMALL_ATTACHMENTS, "web": {"enabled": True},
           "http": {"public": "127.0.0.1:0", "public_url": "https://help.example.test/"}}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("desk", [DESK_ON], indirect=True)
def test_with_the_desk_on_a_notification_links_the_ticket_page_for_what_it_leaves_out(
    desk: tuple[Settings, DaemonThread], relay: RelaySink,
) -> None:
    _, daemon = desk
    send(daemon.port, mail_with_attachments([("video.mp4", "video/mp4", 200_000)],
                                            body="The video shows it."))
    text = body(wait_mails_to(relay, "alice@staff.test", 1)[0])
    assert ("video.mp4  video/mp4  195 KB  kept on the ticket: "
            "https://help.example.test/desk/ticket/1") in text
    assert "helpdesk tickets show" not in text
