"""latest_reply's shortcuts (skipping mail-parser-reply's regexes that cannot match, or
the library altogether) give exactly what running every rule and regex gives.

The comparison over the whole developer corpus against the previous revision is
bench/parse_same.py; this keeps a seeded sample of it in the suite, and it runs against
whatever mail-parser-reply version is installed.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

from helpdesk.mail import replytext
from helpdesk.mail.parse import parse
from tests.corpus import iter_corpus_files
from tests.reply_texts import synthetic

# bench/ holds scripts, not a package: loaded by path (as test_bench_corpus.py does)
_SPEC = importlib.util.spec_from_file_location(
    "mailcorpus", Path(__file__).resolve().parent.parent / "bench" / "mailcorpus.py")
assert _SPEC is not None and _SPEC.loader is not None
mailcorpus = sys.modules.setdefault("mailcorpus", importlib.util.module_from_spec(_SPEC))
_SPEC.loader.exec_module(mailcorpus)  # dataclasses look their module up by name


def _same(text: str) -> None:
    assert replytext._latest_reply(text) == replytext._latest_reply(text, shortcuts=False), \
        repr(text)


def test_the_shortcuts_are_in_use_with_the_installed_library() -> None:
    # None means the library's patterns are not built as the shortcuts assume: they are
    # then off (correct, but slow): re-read its patterns before relying on them again
    hints = replytext._LIBRARY_HINTS
    assert hints._block is not None and hints._mail is not None and hints._sent is not None


@pytest.mark.parametrize("seed", range(4))
def test_short_texts_of_tricky_pieces_are_cut_alike(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(500):
        _same(synthetic(rng))


def test_near_misses_take_the_shortcut_and_agree() -> None:
    for text in ("Hello,\n\nthe printer works again.\n\nRegards\nAnn",
                 "  indented\r\nlines\x0cwith\u2028odd breaks  \n\n\n",
                 "Grüße aus Köln\nthanks a lot\n10:30 is fine, a:b",
                 "Price: 20 €\nno second header line"):
        scan = replytext._Scan(text)
        hints = replytext._LIBRARY_HINTS
        assert not (scan.quoting or hints.header(text, scan) or hints.disclaimer(text)
                    or hints.signature(text, scan))
        _same(text)


def test_realistic_and_corpus_bodies_are_cut_alike() -> None:
    texts = [parse(m.raw).body_text for m in mailcorpus.originals(30, "shortcuts")]
    for path in iter_corpus_files():
        if path.name.endswith(".body.txt"):
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
        elif "talon" in path.parts or "django-helpdesk" in path.parts:
            texts.append(parse(path.read_bytes()).body_text)
    assert len(texts) > 60
    for text in texts:
        _same(text)


def test_the_same_text_twice_is_cut_once() -> None:
    text = "Hello,\n\nfixed now.\n\nOn Mon, Ann wrote:\n> broken"
    first = replytext.latest_reply(text)
    hits = replytext._cached_reply.cache_info().hits
    assert replytext.latest_reply(text) == first == "Hello,\n\nfixed now."
    assert replytext._cached_reply.cache_info().hits == hits + 1
