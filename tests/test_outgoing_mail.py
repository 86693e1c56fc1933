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

from helpdesk.config import Settings
from tests import agent_mails
from tests.agent_desk import body, msgid, reply_to, wait_mails_to, wait_ticket
from tests.helpers import DaemonThread, RelaySink, make_mail, outbox_rows, send, wait_until

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
    make_settings: Callable[..., Settings], relay: RelaySink, tmp_path: Any,
    start_daemon: Callable[..., DaemonThread], review_queue: dict[str, Any],
) -> None:
    from tests.agent_desk import relay_overrides, write_agents

    write_agents(tmp_path)
    settings = make_settings(relay_overrides(relay, **review_queue))
    daemon = start_daemon(settings)
    # Gmail's Message-IDs are long: too long for one folded header line
    gmail_id = "<CAH+w=7ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw_xyz0123@mail.gmail.com>"
    first = make_mail(body="Help, the printer is on fire.", message_id=gmail_id)
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
    wait_ticket(settings, 1, lambda t: t["status"] == "resolved", "resolved")


def threading_headers(relay: RelaySink, msg: EmailMessage) -> dict[str, str]:
    """In-Reply-To and References as the bytes on the wire have them (unfolded)."""
    [wire] = [r.raw for r in relay.received if msgid(msg).encode() in r.raw]
    raw = email.message_from_bytes(wire, policy=email.policy.compat32)
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
def named_desk(make_settings: Callable[..., Settings], relay: RelaySink, tmp_path: Any,
               start_daemon: Callable[..., DaemonThread]) -> tuple[Settings, DaemonThread]:
    from tests.agent_desk import relay_overrides

    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "agents.toml").write_text(AGENTS_WITH_NAMES)
    settings = make_settings(relay_overrides(relay))
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
