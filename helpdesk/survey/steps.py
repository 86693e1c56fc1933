"""Satisfaction surveys: sent [survey] delay after a ticket closes, rated by a signed
link (survey/web.py) or by replying to the survey mail (SurveyReplies, a pipeline
reply hook).

The link's token signs "survey-<ticket>" under the daemon secret, so a link for
one ticket cannot rate another. The token carries no date: a link expires
[survey] link_valid_days after the survey mail was sent (Survey.sent_at), which
covers the links already in customers' mailboxes as well as new ones.

A later rating replaces the earlier one. When a rating is bad, the agent and the team
lead are told once per survey mail: flipping the rating back and forth does not mail
them again (the outbox shows whether they were told since the survey went out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.mail import tokens
from helpdesk.mail.parse import ParsedMail
from helpdesk.outgoing import portal_links
from helpdesk.schedule.runtime import Runtime, Step, base_context, customer_of, history, send
from helpdesk.store import queries
from helpdesk.store.models import Event, Outbox, Survey, Ticket, msgid_key

CHOICES = {"1-5": ("1", "2", "3", "4", "5"), "good-bad": ("good", "bad")}


@dataclass(frozen=True)
class Rating:
    score: int  # 1-5; good-bad is stored as 5 (good) or 1 (bad)
    good: bool


def parse_choice(scale: str, choice: str) -> Rating | None:
    choice = choice.strip().lower()
    if scale == "good-bad":
        return {"good": Rating(5, True), "bad": Rating(1, False)}.get(choice)
    if choice in CHOICES["1-5"]:
        return Rating(int(choice), int(choice) >= 4)
    return None


def token(settings: Settings, ticket_id: int) -> str:
    return tokens.sign(settings.secret, f"survey-{ticket_id}")


def valid(settings: Settings, ticket_id: int, tok: str) -> bool:
    return tokens.verify(settings.secret, f"survey-{ticket_id}", tok)


LinkState = Literal["open", "expired", "unknown"]


def link_state(settings: Settings, session: Session, ticket_id: int) -> LinkState:
    """Whether a (validly signed) link for this ticket may still rate it."""
    row = session.exec(select(Survey).where(Survey.ticket_id == ticket_id)).first()
    if row is None:
        return "unknown"
    expires = row.sent_at + timedelta(days=settings.survey.link_valid_days)
    return "open" if clock.now() < expires else "expired"


def link(settings: Settings, ticket_id: int, choice: str) -> str:
    base = settings.public_base_url()
    return f"{base}/survey/{ticket_id}/{choice}?t={token(settings, ticket_id)}"


# -- sending -------------------------------------------------------------------------

def excluded(session: Session, ticket: Ticket) -> str:
    """Why a ticket gets no survey ('' if it does)."""
    if ticket.spam:
        return "spam"
    if ticket.internal:  # no customer to ask
        return "internal"
    if ticket.unconfirmed:  # a web request nobody confirmed: we never mail that address
        return "unconfirmed"
    if "merged" in ticket.tags or ticket.category == "bounce":
        return "merged" if "merged" in ticket.tags else "bounce"
    merged = session.exec(select(Event.id).where(
        Event.ticket_id == ticket.id, col(Event.kind).in_(("merge", "merged")))).first()
    return "merged" if merged is not None else ""


def plan(rt: Runtime, session: Session, ticket: Ticket) -> list[Step]:
    cfg = rt.settings.survey
    if not cfg.enabled or ticket.status != "closed" or ticket.closed_at is None:
        return []
    due = ticket.closed_at + cfg.delay
    if rt.now > due + cfg.lookback:
        return []  # closed long before the scheduler looked: too late to ask
    return [Step(f"survey:{ticket.closed_at:%Y%m%dT%H%M%S}", due, "survey")]


def send_survey(rt: Runtime, session: Session, ticket: Ticket, step: Step) -> str:
    contact = customer_of(session, ticket)
    why = excluded(session, ticket) or ("no customer" if contact is None else "")
    if not why and contact is not None:
        why = _recently_surveyed(rt, session, contact.email)
    if why or contact is None:
        history(session, ticket, "survey", f"no survey: {why}")
        return f"no survey: {why}"
    scale = rt.settings.survey.scale
    links = [(c, link(rt.settings, ticket.id or 0, c)) for c in CHOICES[scale]]
    context = {**base_context(rt, session, ticket), "scale": scale, "links": links,
               "status_url": portal_links.ticket_url(rt.settings, ticket.id)}
    message_id = send(rt, session, ticket, "survey", [contact.email], context, kind="survey",
                      to_customer=True)
    row = session.exec(select(Survey).where(Survey.ticket_id == ticket.id)).first()
    if row is None:
        row = Survey(ticket_id=ticket.id or 0)
        session.add(row)
    # the rating is for whoever resolved it (not the lead who approved the resolution)
    resolver = queries.credited_to(session, "resolution", ticket)
    row.contact, row.agent, row.queue, row.scale = contact.email, resolver, ticket.queue, scale
    row.sent_at, row.msgid_key = rt.now, msgid_key(message_id)
    history(session, ticket, "survey", f"survey sent to {contact.email}")
    return f"survey sent to {contact.email}"


def _recently_surveyed(rt: Runtime, session: Session, email: str) -> str:
    since = rt.now - timedelta(days=rt.settings.survey.resurvey_days)
    last = session.exec(select(Survey.sent_at).where(
        Survey.contact == email, col(Survey.sent_at) >= since)).first()
    return f"surveyed {last:%Y-%m-%d}" if last is not None else ""


ACTIONS = {"survey": send_survey}


# -- rating ----------------------------------------------------------------------------

def record(settings: Settings, engine: Engine, session: Session, ticket_id: int,
           rating: Rating, comment: str, via: str) -> bool:
    """Store a rating (replacing an earlier one); False if the ticket was never surveyed."""
    row = session.exec(select(Survey).where(Survey.ticket_id == ticket_id)).first()
    ticket = session.get(Ticket, ticket_id)
    if row is None or ticket is None:
        return False
    row.score, row.good, row.comment = rating.score, rating.good, comment.strip()[:4000]
    row.rated_at, row.rated_via = clock.now(), via
    history(session, ticket, "rating", f"rated {rating.score}/5 via {via}"
            + (f": {row.comment[:200]}" if row.comment else ""))
    if not rating.good and not _told_since_survey_mail(session, row):
        _tell_about_bad_rating(settings, engine, session, ticket, row)
    return True


def _told_since_survey_mail(session: Session, row: Survey) -> bool:
    """Whether a bad-rating notice for this ticket was queued after its survey mail
    (outbox ids grow, and outbox rows are kept)."""
    survey_mail = session.exec(select(Outbox.id).where(
        Outbox.ticket_id == row.ticket_id, Outbox.kind == "survey",
        Outbox.msgid_key == row.msgid_key)).first()
    told = select(Outbox.id).where(Outbox.ticket_id == row.ticket_id,
                                   Outbox.kind == "survey-bad")
    if survey_mail is not None:
        told = told.where(col(Outbox.id) > survey_mail)
    return session.exec(told).first() is not None


def _tell_about_bad_rating(settings: Settings, engine: Engine, session: Session,
                           ticket: Ticket, row: Survey) -> None:
    rt = Runtime.build(settings, engine, clock.now())
    to = [a for a in {rt.agent_address(ticket.assignee), rt.lead_address(ticket)} if a]
    if to:
        context = {**base_context(rt, session, ticket), "score": row.score,
                   "scale": row.scale, "comment": row.comment}
        send(rt, session, ticket, "survey_bad", sorted(to), context, kind="survey-bad")


_RATING_LINE = re.compile(r"^\s*(good|bad|[1-5])\b[\s:.,;!-]*(.*)$", re.IGNORECASE)


def rating_from_text(scale: str, text: str) -> tuple[Rating, str] | None:
    """The rating on the first line of a reply ("4", "bad - too slow") and the comment."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith(">")]
    body = [ln for ln in lines if ln.strip()]
    if not body:
        return None
    m = _RATING_LINE.match(body[0])
    rating = parse_choice(scale, m.group(1)) if m else None
    if m is None or rating is None:
        return None
    rest = [m.group(2), *body[1:]]
    comment = "\n".join(x for x in rest if x.strip())
    return rating, re.split(r"^\s*(?:On .*wrote:|-- ?)\s*$", comment, flags=re.M)[0].strip()


class SurveyReplies:
    """Pipeline reply hook: a reply to a survey mail that starts with a rating is a rating,
    not a new ticket (the ticket is closed). Other replies pass through untouched."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine

    def __call__(self, session: Session, mail: ParsedMail) -> Ticket | None:
        keys = [msgid_key(m) for m in (*mail.in_reply_to, *mail.references) if m]
        if not keys:
            return None
        row = session.exec(select(Survey).where(col(Survey.msgid_key).in_(keys))).first()
        if row is None or mail.from_addr.lower() != row.contact:
            return None
        found = rating_from_text(row.scale, mail.body_text)
        if found is None:
            return None
        rating, comment = found
        self.record_from(session, row.ticket_id, rating, comment)
        return session.get(Ticket, row.ticket_id)

    def record_from(self, session: Session, ticket_id: int, rating: Rating,
                    comment: str) -> None:
        record(self.settings, self.engine, session, ticket_id, rating, comment, "mail")
