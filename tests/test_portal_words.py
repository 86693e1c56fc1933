"""The status page's words for an SLA target (web/portal/view.py span_words)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from helpdesk.web.portal.view import span_words


@pytest.mark.parametrize(("span", "business", "words"), [
    (timedelta(hours=1), True, "1 business hour"),
    (timedelta(hours=8), True, "8 business hours"),
    (timedelta(days=1), True, "24 business hours"),
    (timedelta(days=2), False, "2 days"),
    (timedelta(minutes=30), False, "30 minutes"),
    (timedelta(minutes=90), True, "1 business hour and 30 minutes"),
    (timedelta(seconds=5), False, "1 minute"),
])
def test_sla_targets_in_words(span: timedelta, business: bool, words: str) -> None:
    assert span_words(span, business) == words
