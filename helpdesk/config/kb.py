"""The knowledge base's config section, [kb] (helpdesk/kb/, web/kb_public.py,
web/kb_desk.py): kept apart from settings.py so its keys are documented in one place;
config.Settings embeds it."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import Field, field_validator

from helpdesk.config.base import Section
from helpdesk.config.priority import PRIORITIES
from helpdesk.config.schedule import Duration

# order numbers, invoice and customer numbers as helpdesks usually write them; a site
# replaces the list with its own shapes
DEFAULT_PATTERNS = (r"(?i)\b(?:order|invoice|customer|account)\s*(?:no\.?|number|#|:)?\s*"
                    r"[A-Z]{0,4}-?\d{4,}\b",
                    r"\b[A-Z]{2,4}-\d{5,}\b")


class KbSection(Section):
    """The knowledge base: articles drafted from tickets (#kb), published by a lead,
    shown on the public listener under /kb and suggested in acknowledgements."""

    enabled: bool = Field(False, description="Serve the public KB pages under /kb on the "
                          "public listener (and start it for them); suggest articles in "
                          "acknowledgements. Drafting and the desk's KB pages work "
                          "either way.")
    personal_data_patterns: tuple[str, ...] = Field(
        DEFAULT_PATTERNS, description="Regular expressions (Python syntax) of personal "
        "data a draft flags for removal besides the built-in ones (e-mail addresses, "
        "phone numbers, the ticket's people's names): order numbers and the like.")
    postmortem_priority: str = Field(
        "critical", description="Tickets of this priority or higher need a post-mortem "
        "(cause, fix, prevention) when resolved; `helpdesk stats` counts those still "
        "missing one. Empty: no post-mortems.")
    suggest_min_rank: float = Field(
        0.5, ge=0, le=1, description="An article the full-text index finds for a new "
        "ticket's mail is suggested in its acknowledgement when its rank is at least this: "
        "the share (0..1) of the significant words of the article's title and question "
        "that the mail contains.")
    suggest_limit: int = Field(3, ge=0, le=10, description="Articles listed in an "
                               "acknowledgement at most; 0: none.")
    link_valid: Duration = Field(timedelta(days=30), description="A suggested article's "
                                 "link offers \"this solved my problem\" this long after "
                                 "the acknowledgement was sent.")

    @field_validator("personal_data_patterns")
    @classmethod
    def _compiles(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in v:
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(f"{pattern!r} is not a regular expression: {err}") from None
        return v

    @field_validator("postmortem_priority")
    @classmethod
    def _priority(cls, v: str) -> str:
        if v and v not in PRIORITIES:
            raise ValueError(f"must be one of {', '.join(PRIORITIES)} or empty")
        return v
