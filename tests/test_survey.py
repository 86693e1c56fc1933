"""Satisfaction surveys: sent once after the delay, rated by a signed link (GET shows,
POST records, a tampered link is refused) or by replying; bad ratings are passed on."""

from __future__ import annotations

import email
import email.policy
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import select

from helpdesk.config import settings as config
from helpdesk.config.settings import Settings
from helpdesk.errors import ConfigError
from helpdesk.pipeline import Outcome
from helpdesk.spool import Envelope, Spool
from helpdesk.store import db
from helpdesk.store.models import Survey
from tests.conftest import MakeSettings, write_toml
from tests.helpers import (
    DaemonThread,
    all_tickets,
    engine_for,
    free_port,
    make_mail,
    run_pipeline,
    ticket_row,
)
from tests.sched import at, mails, make_ticket, run_pass, set_status, with_agents

CLOSED = at("2026-11-30T12:00")


@pytest.fixture
def settings(make_settings: MakeSettings) -> Settings:
    port = free_port()
    return with_agents(make_settings({"http": {"public": f"127.0.0.1:{port}"}, "survey": {
        "enabled": True, "delay": "1h", "scale": "1-5", "resurvey_days": 30}}))


def closed_ticket(settings: Settings, **kwargs: str) -> int:
    tid = make_ticket(settings, at("2026-11-30T09:00"), **kwargs)  # type: ignore[arg-type]
    set_status(settings, tid, "closed", CLOSED)
    return tid


def survey_row(settings: Settings, tid: int) -> Survey | None:
    with db.session_scope(engine_for(settings)) as s:
        return s.exec(select(Survey).where(Survey.ticket_id == tid)).first()


def links(settings: Settings, to: str = "carol@customer.test") -> dict[str, str]:
    raw = next(m.raw for m in mails(settings, "survey") if m.rcpt_tos == [to])
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return dict(re.findall(r"^\s+(\d): (https?://\S+)\r?$", text, flags=re.M))


def answer_survey(settings: Settings, tid: int, subject: str, body: str,
                  headers: dict[str, str] | None = None) -> list[Outcome]:
    """The survey goes out, carol's mail system answers it, the pipeline takes that in."""
    run_pass(settings, at("2026-11-30T13:00"))
    survey_mail = mails(settings, "survey")[0]
    answer = make_mail(subject=subject, body=body, headers=headers,
                       in_reply_to=f"<{survey_mail.message_id}>")
    spool = Spool(settings.data_dir / "spool")
    spool.put(answer.as_bytes(), Envelope(route="test", mail_from="carol@customer.test",
                                          rcpt_tos=("support@example.test",)))
    return run_pipeline(settings, spool)


def test_survey_is_sent_after_the_delay_and_not_twice(settings: Settings):
    tid = closed_ticket(settings)
    assert run_pass(settings, at("2026-11-30T12:59")) == []
    assert run_pass(settings, at("2026-11-30T13:00")) == [
        f"HD-{tid} survey:20261130T120000: survey sent to carol@customer.test"]
    assert run_pass(settings, at("2026-11-30T14:00")) == []
    assert [m.rcpt_tos for m in mails(settings, "survey")] == [["carol@customer.test"]]
    assert set(links(settings)) == {"1", "2", "3", "4", "5"}


def test_no_survey_for_a_customer_surveyed_recently(settings: Settings):
    closed_ticket(settings)
    run_pass(settings, at("2026-11-30T13:00"))
    again = closed_ticket(settings, subject="Another question")
    done = run_pass(settings, at("2026-11-30T13:30"))
    assert done == [f"HD-{again} survey:20261130T120000: no survey: surveyed 2026-11-30"]
    assert len(mails(settings, "survey")) == 1


def test_link_get_shows_post_records_and_tampering_is_refused(
        settings: Settings, start_daemon: Callable[..., DaemonThread]):
    tid = closed_ticket(settings)
    other = closed_ticket(settings, customer="dave@customer.test")
    run_pass(settings, at("2026-11-30T13:00"))
    start_daemon(settings)
    url = links(settings)["2"]

    page = urllib.request.urlopen(url, timeout=10).read().decode()  # what a scanner does
    assert "value='2' checked" in page and "<textarea" in page
    assert survey_row(settings, tid).score is None  # a GET records nothing

    token = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)["t"][0]
    base = settings.public_base_url()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{base}/survey/{other}/1?t={token}", timeout=10)
    assert refused.value.code == 403
    assert "not valid" in refused.value.read().decode()
    forged = urllib.parse.urlencode({"t": token, "rating": "1"}).encode()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{base}/survey/{other}", data=forged, timeout=10)
    assert refused.value.code == 403
    assert survey_row(settings, other).score is None

    form = urllib.parse.urlencode({"t": token, "rating": "2", "comment": "slow"}).encode()
    assert "Thank you" in urllib.request.urlopen(f"{base}/survey/{tid}", data=form,
                                                 timeout=10).read().decode()
    row = survey_row(settings, tid)
    assert (row.score, row.good, row.comment, row.rated_via) == (2, False, "slow", "web")
    bad = mails(settings, "survey-bad")
    assert [m.rcpt_tos for m in bad] == [["alice@staff.test", "lisa@staff.test"]]

    form = urllib.parse.urlencode({"t": token, "rating": "5", "comment": ""}).encode()
    urllib.request.urlopen(f"{base}/survey/{tid}", data=form, timeout=10).read()
    assert survey_row(settings, tid).score == 5  # the later rating replaces the earlier


def test_replying_to_the_survey_mail_rates_the_ticket(settings: Settings):
    tid = closed_ticket(settings)
    outcomes = answer_survey(settings, tid, f"Re: [HD-{tid}] How did we do?",
                             "4 thanks, quick and friendly\n\n> How did we do?\n")
    assert [(o.kind, o.ticket) for o in outcomes] == [("stored", f"HD-{tid}")]
    row = survey_row(settings, tid)
    assert (row.score, row.good, row.comment, row.rated_via) == (
        4, True, "thanks, quick and friendly", "mail")
    assert ticket_row(settings, tid).status == "closed"  # not reopened, no new ticket
    assert len(all_tickets(settings)) == 1
    assert mails(settings, "survey-bad") == []


def test_an_autoresponder_answering_the_survey_is_no_rating(settings: Settings):
    tid = closed_ticket(settings)
    outcomes = answer_survey(settings, tid, f"Automatic reply: [HD-{tid}] How did we do?",
                             "1 week away from the office, back on Monday.\n",
                             headers={"Auto-Submitted": "auto-replied"})
    assert [(o.kind, o.ticket) for o in outcomes] == [("stored", f"HD-{tid}")]
    row = survey_row(settings, tid)
    assert row is not None and row.score is None  # still waiting for carol herself
    assert ticket_row(settings, tid).status == "closed" and len(all_tickets(settings)) == 1
    assert mails(settings, "survey-bad") == []


def test_the_links_follow_the_one_public_url_of_every_mail(make_settings: MakeSettings) -> None:
    """Behind a proxy the survey links point where the status pages' do ([http]
    public_url), not at the listener's own address."""
    settings = with_agents(make_settings({"http": {"public_url": "https://help.example.test/"},
                                          "survey": {"enabled": True, "delay": "1h"}}))
    closed_ticket(settings)
    run_pass(settings, at("2026-11-30T13:00"))
    found = links(settings)
    assert found and all(u.startswith("https://help.example.test/survey/")
                         for u in found.values()), found


def test_the_old_survey_public_url_is_read_as_the_one_for_every_link(
        make_settings: MakeSettings, tmp_path: Path) -> None:
    old = make_settings({"survey": {"enabled": True,
                                    "public_url": "https://help.example.test"}})
    assert old.http.public_url == "https://help.example.test"
    assert old.public_base_url() == "https://help.example.test"
    path = tmp_path / "both.toml"
    write_toml(path, {"http": {"public_url": "https://desk.example.test"},
                      "survey": {"public_url": "http://127.0.0.1:8025"}})
    with pytest.raises(ConfigError, match=r"\[survey\] public_url .* and \[http\] public_url "
                                          r".* differ.*remove \[survey\] public_url"):
        config.load(path)
