"""The public "new request" form's config section, [web_form] (helpdesk/web/portal/form.py,
docs/portal.md): kept apart from settings.py so its keys are documented in one place;
config.Settings embeds it."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator

from helpdesk.config.base import Section
from helpdesk.config.schedule import Duration

REPORTER_PRIORITIES = ("normal", "high", "critical")


class WebFormSection(Section):
    """The form at /portal/new on the public listener (needs [portal] enabled): a visitor's
    request becomes a mail to the helpdesk, through the spool and the rules like any
    other, with the ticket's channel `web`."""

    enabled: bool = Field(False, description="Serve the form at /portal/new (with [portal] "
                          "enabled) and link it from the status pages and the knowledge "
                          "base.")
    categories: tuple[str, ...] = Field(
        (), description="The categories a visitor picks from (the ticket's category; the "
        "rules may change it). Empty: the form asks for none.")
    priority_labels: dict[str, str] = Field(
        {"normal": "Normal", "high": "High: it stops my work",
         "critical": "Critical: many people are affected"},
        description="The reporter's priority choices (keys normal, high, critical; a key "
        "left out is not offered) and their labels. Rules read the choice as "
        "`reporter_priority`; it sets nothing by itself. Empty: the form asks for none.")
    confirm: Literal["unknown", "always", "never"] = Field(
        "unknown", description="Who must confirm by a mailed link before their request "
        "counts: `unknown` (an address that has no ticket yet), `always` or `never`. "
        "Until then the ticket is held unconfirmed: flagged in the desk, no SLA clock, "
        "no agent told.")
    unconfirmed_close: Duration = Field(
        timedelta(days=14), description="A request still unconfirmed this long after it "
        "came is closed by the scheduler (history: `unconfirmed-expired`; nobody is "
        "mailed: the address never showed it wanted us to write). 0: kept forever.")
    max_size: int = Field(10 * 1024 * 1024, ge=1024, description="The most bytes of "
                          "attachments one request may carry together (text fields are "
                          "bounded apart).")
    per_address_per_hour: int = Field(5, ge=1, description="Requests one e-mail address may "
                                      "send through the form per hour (counted in the "
                                      "database: every daemon's, kept over restarts).")
    per_client_per_hour: int = Field(20, ge=1, description="Requests one client IP address "
                                     "may send per hour, whatever the address (counted in the "
                                     "database like per_address_per_hour).")
    max_text: int = Field(20_000, ge=100, description="The most characters of the "
                          "description; a longer one is refused with the text kept.")

    @field_validator("priority_labels")
    @classmethod
    def _known_priorities(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(REPORTER_PRIORITIES))
        if unknown:
            raise ValueError(f"unknown priority {', '.join(unknown)}: use "
                             f"{', '.join(REPORTER_PRIORITIES)}")
        return {k: v[k] for k in REPORTER_PRIORITIES if k in v}
