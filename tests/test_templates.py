"""Mail templates from a search path: the queue's, the site's, then the shipped ones;
a missing one names every directory searched; each Settings keeps its own cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpdesk.outgoing import compose as mailout
from tests.conftest import MakeSettings

CONTEXT = {"ticket_id": "HD-1", "subject": "Printer", "tagged_subject": "[HD-1] Printer",
           "customer_name": "Carol", "customer": "carol@customer.test",
           "helpdesk_name": "Example Helpdesk", "queue": "billing", "priority": "normal",
           "category": ""}


def template_dir(path: Path, subject: str, name: str = "ack") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{name}.subject.j2").write_text(subject)
    (path / f"{name}.txt.j2").write_text(f"{subject} text for {{{{ ticket_id }}}}\n")
    return path


def test_the_site_template_wins_over_the_shipped_one(make_settings: MakeSettings,
                                                     tmp_path: Path) -> None:
    site = template_dir(tmp_path / "site", "Site ack")
    settings = make_settings({"paths": {"templates": str(site)}})
    subject, text, html = mailout.render(settings, "ack", CONTEXT)
    assert (subject, text) == ("Site ack", "Site ack text for HD-1\n")
    assert html is not None and "HD-1" in html  # no site HTML: the shipped one is found
    # what the site does not override comes from the shipped templates
    assert mailout.render(settings, "status", {**CONTEXT, "status": "resolved",
                                               "status_note": "done"})[0]


def test_a_queue_template_wins_over_the_site_one_for_that_queue_only(
        make_settings: MakeSettings, tmp_path: Path) -> None:
    site = template_dir(tmp_path / "site", "Site ack")
    billing = template_dir(tmp_path / "billing", "Billing ack")
    settings = make_settings({"paths": {"templates": str(site)},
                              "queue": {"billing": {"templates": str(billing)},
                                        "support": {}}})
    assert mailout.render(settings, "ack", CONTEXT, "billing")[0] == "Billing ack"
    assert mailout.render(settings, "ack", CONTEXT, "support")[0] == "Site ack"
    assert mailout.render(settings, "ack", CONTEXT)[0] == "Site ack"
    assert mailout.templates(settings).search_path("billing") == (
        billing, site, mailout.PROJECT_TEMPLATES)


def test_a_missing_template_names_every_directory_searched(make_settings: MakeSettings,
                                                           tmp_path: Path) -> None:
    site = template_dir(tmp_path / "site", "Site ack")
    billing = template_dir(tmp_path / "billing", "Billing ack")
    settings = make_settings({"paths": {"templates": str(site)},
                              "queue": {"billing": {"templates": str(billing)}}})
    with pytest.raises(mailout.TemplateNotFound) as err:
        mailout.render(settings, "no_such", CONTEXT, "billing")
    message = str(err.value)
    assert "'no_such.subject.j2'" in message
    for directory in (billing, site, mailout.PROJECT_TEMPLATES):
        assert str(directory) in message


def test_two_settings_in_one_process_do_not_share_a_cache(make_settings: MakeSettings,
                                                          tmp_path: Path) -> None:
    site = template_dir(tmp_path / "site", "Site ack")
    one = make_settings({"paths": {"templates": str(site)}})
    two = make_settings({"paths": {"templates": str(site)}})  # the very same search path
    assert mailout.render(one, "ack", CONTEXT)[0] == mailout.render(two, "ack", CONTEXT)[0]
    env_one = mailout.templates(one).environment()
    env_two = mailout.templates(two).environment()
    assert env_one is not env_two
    assert env_one is mailout.templates(one).environment()  # kept between renders

    mailout.templates(one).clear()  # one daemon's HUP
    (site / "ack.subject.j2").write_text("Site ack, edited")
    assert mailout.render(one, "ack", CONTEXT)[0] == "Site ack, edited"
    assert mailout.templates(one).environment() is not env_one  # built afresh
    assert mailout.templates(two).environment() is env_two  # the other's is untouched
