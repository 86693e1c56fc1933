"""A word in more messages than search.RANKED: only the newest RANKED matches are
ranked (scoring every match of a common word took a second at 1,000,000 messages), the
older ones follow newest first, and the cursor pages through all of them, each once.
SQLite and PostgreSQL, with and without a filter (the joined query)."""

from __future__ import annotations

import pytest

from helpdesk.store import search
from helpdesk.store.search import Filters
from tests.conftest import MakeSettings
from tests.helpers import make_mail
from tests.test_search import _deliver, _find, _tickets

PLAIN = "We saw a zeppelin over the office this morning."


@pytest.fixture
def zeppelins(make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch) -> MakeSettings:
    """Six tickets mentioning zeppelin, HD-1 the oldest; HD-1 and HD-5 have it in the
    subject as well (the best matches); three are ranked."""
    settings = make_settings()
    _deliver(settings, *(make_mail(subject=f"Zeppelin sighting {n}" if n in (1, 5)
                                   else f"Office sighting {n}", body=PLAIN)
                         for n in range(1, 7)))
    monkeypatch.setattr(search, "RANKED", 3)
    return settings


@pytest.mark.parametrize("filters", [None, Filters(queues=["support"])])
def test_the_newest_matches_are_ranked_and_the_older_follow_newest_first(
        zeppelins: MakeSettings, filters: Filters | None) -> None:
    # ranked: HD-4..6, the subject match first, then the newest; then HD-3, 2, 1
    assert _tickets(_find(zeppelins, "zeppelin", filters)) == [5, 6, 4, 3, 2, 1]
    seen, cursor = [], ""
    for _ in range(5):
        page = _find(zeppelins, "zeppelin", filters, limit=2, cursor=cursor)
        if not page:
            break
        seen += _tickets(page)
        cursor = page[-1].cursor
    assert seen == [5, 6, 4, 3, 2, 1]  # pages straddling the ranked part join up
    assert _tickets(_find(zeppelins, "zeppelin", filters, limit=4, cursor="2")) == [4, 3, 2, 1]
    assert _tickets(_find(zeppelins, "zeppelin", filters, limit=2, cursor="4")) == [2, 1]


def test_with_no_more_matches_than_ranked_all_are_ranked(zeppelins: MakeSettings,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "RANKED", 6)
    hits = _find(zeppelins, "zeppelin")
    assert _tickets(hits) == [5, 1, 6, 4, 3, 2]  # both subject matches first
    assert hits[0].rank == hits[1].rank > hits[2].rank


def test_a_word_postgresql_expects_everywhere_is_found_the_same_way(
        zeppelins: MakeSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    # PostgreSQL walks the newest messages for a common word and reads the GIN index's
    # matches for a rare one (search._common): the order is the same either way
    monkeypatch.setattr(search, "_common", lambda *_: True)
    assert _tickets(_find(zeppelins, "zeppelin")) == [5, 6, 4, 3, 2, 1]
    assert _tickets(_find(zeppelins, "zeppelin", limit=2, cursor="2")) == [4, 3]
