"""A ticket's channel and the public form's envelope (the form is web/portal/form.py):
what the envelope says, defined once for the form, the pipeline and the rules.

A request from the form is an RFC 5322 mail from the visitor with the envelope route
`web`; the envelope's extra carries what the visitor chose beyond the mail (category,
reporter priority). Only the daemon writes spool envelopes, so unlike a mail's own
headers (an X-Helpdesk-Route anyone can type) they can be believed.
"""

from __future__ import annotations

from helpdesk.spool import Envelope

ROUTE = "web"


def envelope(address: str, to: str, category: str, reporter_priority: str) -> Envelope:
    return Envelope(route=ROUTE, mail_from=address, rcpt_tos=(to,),
                    extra={"web_form": {"category": category,
                                        "reporter_priority": reporter_priority}})


def channel(env: Envelope) -> str:
    """How a ticket's first message came: `web` (the form), `api`, else `mail`."""
    if env.route == ROUTE:
        return "web"
    if env.route.startswith("api:"):
        return "api"
    return "mail"


def _chosen(env: Envelope, key: str) -> str:
    if env.route != ROUTE:
        return ""
    given = env.extra.get("web_form")
    value = given.get(key, "") if isinstance(given, dict) else ""
    return value if isinstance(value, str) else ""


def reporter_priority(env: Envelope) -> str:
    """The priority the visitor chose on the form ("" for none, or another channel)."""
    return _chosen(env, "reporter_priority")


def category(env: Envelope) -> str:
    return _chosen(env, "category")
