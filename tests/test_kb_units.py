"""The knowledge base's pure parts: what counts as personal data, how a mail's words
rank an article for a suggestion, how a post-mortem is read from a mail, and the
signed links' tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from helpdesk import clock
from helpdesk.config import settings as config
from helpdesk.kb import personal, postmortem, suggest
from helpdesk.kb import search as kb_search
from helpdesk.store.kb_models import KbArticle


def _kinds(text: str, **kw: object) -> set[tuple[str, str]]:
    return {(f["kind"], f["text"]) for f in personal.find(text, **kw)}  # type: ignore[arg-type]


def test_personal_data_is_found_and_ordinary_words_are_not() -> None:
    text = ("Carol Customer (carol.c+hd@customer.test) called from +49 30 1234567 and "
            "030-555 1234 about order #1234567 and ORD-55555 on 2026-12-06. The customer "
            "said the brown toner is fine; Mr Brown agreed. Version 10.2.3 of 2024.")
    found = _kinds(text, names=["Carol Customer", "Bob Brown"],
                   patterns=config.parse({}).kb.personal_data_patterns)
    assert found >= {("e-mail address", "carol.c+hd@customer.test"),
                     ("phone number", "+49 30 1234567"), ("phone number", "030-555 1234"),
                     ("name", "Carol Customer"), ("name", "Carol"), ("name", "Customer"),
                     ("name", "Brown"), ("pattern", "order #1234567"),
                     ("pattern", "ORD-55555")}
    texts = {t for _, t in found}
    assert "2026-12-06" not in texts and "10.2.3" not in texts  # a date, a version
    assert "customer" not in texts and "brown" not in texts  # words, as written
    assert personal.find("Switch the printer off for a minute.", names=["Alice Agent"]) == []


def test_a_bad_personal_data_pattern_stops_the_config() -> None:
    with pytest.raises(config.ConfigError, match="personal_data_patterns"):
        config.parse({"kb": {"personal_data_patterns": ["(unclosed"]}})
    with pytest.raises(config.ConfigError, match="postmortem_priority"):
        config.parse({"kb": {"postmortem_priority": "urgent"}})


def test_a_mail_ranks_an_article_by_the_share_of_its_question_it_contains() -> None:
    article = KbArticle(title="Printer prints blank pages",
                        question="The office printer prints only blank pages.")
    same = set(kb_search.significant_words("our printer prints blank pages since today"))
    other = set(kb_search.significant_words("please change the address of my invoices"))
    assert suggest._rank(same, article) >= 0.5 > suggest._rank(other, article) == 0
    # filler words and short ones are not matched on
    assert kb_search.significant_words("Hello, thanks for the help with it: 42 ok") == ["help"]


def test_a_post_mortem_is_read_from_the_filled_in_template() -> None:
    text = "Cause:\nthe disk filled\n\nFIX: logs removed\nprevention:  an alert\n"
    assert postmortem.parse(text) == {"cause": "the disk filled", "fix": "logs removed",
                                      "prevention": "an alert"}
    assert postmortem.parse("just a text")["cause"] == "just a text"


def test_a_solved_link_is_bound_to_its_ticket_and_article_and_expires() -> None:
    settings = config.parse({"helpdesk": {"secret": "s"}, "kb": {"link_valid": "1d"}})
    tok = suggest.token(settings, 7, 3)
    assert suggest.check_token(settings, tok, 3) == ("ok", 7)
    assert suggest.check_token(settings, tok, 4) == ("bad", 0)
    other = config.parse({"helpdesk": {"secret": "rotated"}})
    assert suggest.check_token(other, tok, 3) == ("bad", 0)  # a new secret ends them
    later = datetime.now(UTC) + timedelta(days=2)
    clock.set_source(lambda: later)
    try:
        assert suggest.check_token(settings, tok, 3) == ("expired", 0)
    finally:
        clock.set_source(None)
