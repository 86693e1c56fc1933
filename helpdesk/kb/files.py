"""Articles as Markdown files, for `helpdesk kb export DIR` / `import DIR`, so a KB can
live in git beside the rules.

One file per article, `NNNN-slug.md`: YAML front matter (python-frontmatter) with id,
title, category, tags, visibility and status, then the question under "## Question"
and the resolution under "## Answer". Import matches by `id` (a file without one, or
with an id this database does not have, becomes a new article), flags personal data
again, and reindexes. Ticket links, counters and post-mortems stay in the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import frontmatter
from sqlmodel import Session, select

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.durable import write_atomic
from helpdesk.errors import HelpdeskError
from helpdesk.kb import articles
from helpdesk.store.kb_models import KbArticle

QUESTION, ANSWER = "## Question", "## Answer"
_SLUG = re.compile(r"[^a-z0-9]+")


class BadArticleFile(HelpdeskError):
    """A file that is not an article; the message names the file and the problem."""


def slug(title: str) -> str:
    return _SLUG.sub("-", title.lower()).strip("-")[:60] or "article"


def to_markdown(article: KbArticle) -> str:
    post = frontmatter.Post(
        f"{QUESTION}\n\n{article.question.strip()}\n\n{ANSWER}\n\n"
        f"{article.resolution.strip()}\n",
        id=article.id, title=article.title, category=article.category,
        tags=list(article.tags), visibility=article.visibility, status=article.status)
    return frontmatter.dumps(post, sort_keys=False) + "\n"


def export(session: Session, directory: Path) -> list[Path]:
    """Write every article into `directory` (made if missing); returns the files."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for article in session.exec(select(KbArticle).order_by(KbArticle.id)).all():
        path = directory / f"{article.id:04d}-{slug(article.title)}.md"
        write_atomic(path, to_markdown(article).encode())
        written.append(path)
    return written


@dataclass(frozen=True)
class Parsed:
    id: int | None
    fields: articles.Fields
    status: str


def parse(path: Path) -> Parsed:
    try:
        post = frontmatter.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, frontmatter.yaml.YAMLError) as err:
        raise BadArticleFile(f"{path}: not a Markdown file with front matter: {err}") from None
    meta = post.metadata
    title, status = str(meta.get("title") or "").strip(), str(meta.get("status") or "draft")
    visibility = str(meta.get("visibility") or "internal")
    if not title:
        raise BadArticleFile(f"{path}: no title in the front matter")
    if status not in articles.STATUSES or visibility not in articles.VISIBILITIES:
        raise BadArticleFile(f"{path}: status must be one of {', '.join(articles.STATUSES)}"
                             f" and visibility one of {', '.join(articles.VISIBILITIES)}")
    question, _, answer = post.content.partition(f"\n{ANSWER}\n")
    question = question.strip().removeprefix(QUESTION).strip()
    tags = meta.get("tags") or []
    raw_id = meta.get("id")
    return Parsed(
        id=raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None,
        fields=articles.Fields(
            title=title, question=question, resolution=answer.strip(),
            category=str(meta.get("category") or ""),
            tags=articles.clean_tags(" ".join(map(str, tags if isinstance(tags, list)
                                                  else [tags]))),
            visibility=visibility),
        status=status)


def import_dir(session: Session, settings: Settings, directory: Path,
               *, by: str = "import") -> tuple[int, int]:
    """Read every *.md of `directory` (all checked before any is stored); returns
    (created, updated)."""
    parsed = [parse(p) for p in sorted(directory.glob("*.md"))]
    created = updated = 0
    for item in parsed:
        article = session.get(KbArticle, item.id) if item.id else None
        if article is None:
            article = KbArticle(created_by=by, created_at=clock.now())
            session.add(article)
            session.flush()
            created += 1
        else:
            updated += 1
        if item.status == "published" and article.status != "published":
            # the file is the admin's word: published as it says, flags or not
            article.status, article.published_by = "published", by
            article.published_at = clock.now()
        elif item.status == "draft":
            article.status = "draft"
        articles.save(session, settings, article, item.fields)  # and reindexed
    return created, updated
