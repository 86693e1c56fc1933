"""The benchmark's realistic corpus (bench/mailcorpus.py) is what it claims to be once it
goes through the real pipeline: a third of a burst threads onto the existing tickets,
the legacy charsets arrive decoded, HTML-only mail has a text body, the PDFs are stored
as attachments. A corpus that silently opened a new ticket for every "reply" would
measure a different workload than bench/pipeline.py says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from helpdesk.spool import Envelope, Spool
from tests.conftest import MakeSettings
from tests.helpers import all_tickets, run_pipeline

# bench/ holds scripts, not a package; loaded by path so that its other modules (rules,
# search, web) never shadow anything on sys.path
_SPEC = importlib.util.spec_from_file_location(
    "mailcorpus", Path(__file__).resolve().parent.parent / "bench" / "mailcorpus.py")
assert _SPEC is not None and _SPEC.loader is not None
mailcorpus = importlib.util.module_from_spec(_SPEC)
sys.modules["mailcorpus"] = mailcorpus  # dataclasses look their module up by name
_SPEC.loader.exec_module(mailcorpus)

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _spool(settings: object, mails: list[Any]) -> None:
    spool = Spool(settings.data_dir / "spool")  # type: ignore[attr-defined]
    for m in mails:
        spool.put(m.raw, Envelope(route="smtp", mail_from=m.sender,
                                  rcpt_tos=(mailcorpus.RCPT,)))


def test_the_realistic_corpus_threads_decodes_and_attaches(make_settings: MakeSettings) -> None:
    settings = make_settings()
    seed = mailcorpus.originals(12, "seed")
    _spool(settings, seed)
    assert {o.kind for o in run_pipeline(settings)} == {"stored"}
    burst = mailcorpus.burst(30, "burst", seed)
    _spool(settings, burst)
    assert {o.kind for o in run_pipeline(settings)} == {"stored"}

    tickets = all_tickets(settings)
    assert len(tickets) == 12 + 20  # the 10 replies opened none
    seeded = {f"HD-{n}" for n in range(1, 13)}
    threaded = [t["id"] for t in tickets for m in t["messages"]
                if m["direction"] == "in" and m["threaded_by"].startswith("In-Reply-To")]
    assert len(threaded) == 10 and set(threaded) <= seeded
    bodies = [m["body_text"] for t in tickets for m in t["messages"] if m["direction"] == "in"]
    lines = [line for _, line in mailcorpus.CHARSETS]
    assert any(line in body for body in bodies for line in lines), "no legacy charset decoded"
    assert all("<p>" not in body and body.strip() for body in bodies)  # HTML-only: text
    pdfs = [a for t in tickets for m in t["messages"] for a in m["attachments"]
            if a["filename"].endswith(".pdf")]
    assert pdfs, "no PDF stored as an attachment"
