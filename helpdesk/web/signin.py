"""The ways into the desk, as functions the routes and the CLI share: magic links,
passwords, and the sign-in rate limit. Each takes an open database session; the
caller owns the transaction.

- A magic link is a random token mailed to the agent; the database keeps its SHA-256.
  It works once (one conditional UPDATE marks it used, so two daemons cannot both
  accept it) and for [web] login_link_valid.
- A password is optional, hashed with argon2id (argon2-cffi's defaults, which follow
  RFC 9106); an agent without one signs in by link only.
- Attempts are rows keyed by a hash of the address (or name) and of the client's IP,
  counted over [web] signin_window: in the database, so several daemons share them.
"""

from __future__ import annotations

import functools
import secrets
from datetime import timedelta
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, update
from sqlmodel import Session, col

from helpdesk import clock
from helpdesk.config.agents import Agent
from helpdesk.config.settings import Settings
from helpdesk.outgoing import compose as mailout
from helpdesk.store import attempts
from helpdesk.store.web_models import WebLoginToken, WebPassword
from helpdesk.web.sessions import digest

CONFIRM_PATH = "/desk/login/confirm"
MIN_PASSWORD = 10
_HASHER = PasswordHasher()  # argon2id; parameters ride in each hash, so they can change


@functools.cache
def _dummy_hash() -> str:
    """Verified when there is no hash to check against, so an unknown name takes as long.

    Made on first use, not on import: an argon2 hash holds 64 MiB for a moment, which
    every process importing this module (the daemon, each CLI command) paid at start,
    whether or not anyone ever signs in with a password (issue #18's memory budget).
    """
    return _HASHER.hash(secrets.token_urlsafe(16))


# -- magic links --------------------------------------------------------------------------

def issue_link(session: Session, settings: Settings, agent: Agent, base_url: str) -> str:
    """A new single-use sign-in link for `agent`."""
    token = secrets.token_urlsafe(32)
    # links past their time are of no use to anyone: forget them while we are here
    session.execute(delete(WebLoginToken).where(
        col(WebLoginToken.expires_at) < clock.now() - timedelta(days=1)))
    session.add(WebLoginToken(key=digest(token), agent=agent.name,
                              expires_at=clock.now() + settings.web.login_link_valid))
    return f"{base_url.rstrip('/')}{CONFIRM_PATH}?t={quote(token)}"


def mail_link(session: Session, settings: Settings, agent: Agent, base_url: str,
              client: str) -> None:
    """Queue a mail with a fresh link to the agent's address on file (never to an
    address a visitor typed); it leaves when the transaction commits."""
    link = issue_link(session, settings, agent, base_url)
    minutes = int(settings.web.login_link_valid.total_seconds() // 60)
    subject, text, html = mailout.render(settings, "web/login_link", {
        "helpdesk_name": settings.helpdesk.name, "agent": agent.shown_name, "link": link,
        "minutes": minutes, "client": client})
    msg = mailout.build(settings, to=[agent.email], subject=subject, text=text, html=html,
                        automatic=True, id_hint="signin")
    mailout.queue(session, msg, kind="web-signin", ticket_id=None, mail_from="",
                  automatic=True)


def link_is_usable(session: Session, token: str) -> bool:
    """Whether the link would sign in now (read only: a GET of the link changes nothing)."""
    row = session.get(WebLoginToken, digest(token))
    return row is not None and row.used_at is None and row.expires_at > clock.now()


def redeem(session: Session, token: str) -> str | None:
    """Use the link: the agent's name, or None when unknown, used or expired. One
    conditional UPDATE, so of two requests (or daemons) racing only one wins."""
    now = clock.now()
    key = digest(token)
    won = session.execute(
        update(WebLoginToken)
        .where(col(WebLoginToken.key) == key, col(WebLoginToken.used_at).is_(None),
               col(WebLoginToken.expires_at) > now)
        .values(used_at=now))
    if not getattr(won, "rowcount", 0):
        return None
    row = session.get(WebLoginToken, key)
    return row.agent if row is not None else None


# -- passwords ----------------------------------------------------------------------------

def set_password(session: Session, agent: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
    row = session.get(WebPassword, agent) or WebPassword(agent=agent, hash="")
    row.hash, row.set_at = _HASHER.hash(password), clock.now()
    session.add(row)


def remove_password(session: Session, agent: str) -> bool:
    row = session.get(WebPassword, agent)
    if row is not None:
        session.delete(row)
    return row is not None


def check_password(session: Session, agent: Agent | None, password: str) -> bool:
    """Whether `password` is the agent's; False for no agent or no password, after the
    same work, so the answer's timing does not tell whether a name is an agent's."""
    row = session.get(WebPassword, agent.name) if agent is not None else None
    try:
        _HASHER.verify(row.hash if row is not None else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    if row is None:
        return False
    if _HASHER.check_needs_rehash(row.hash):  # parameters raised since it was set
        row.hash = _HASHER.hash(password)
        session.add(row)
    return True


# -- rate limit ---------------------------------------------------------------------------

def allow_attempt(session: Session, settings: Settings, address: str, client: str) -> bool:
    """Record one sign-in attempt; False when the address or the client has used up its
    attempts in the window. Refused attempts count too: a guesser who keeps trying
    stays locked out instead of getting a fresh try each window."""
    web = settings.web
    return attempts.allow(session, settings, [("address", address, web.signin_per_address),
                                              ("client", client, web.signin_per_client)],
                          web.signin_window, count_refused=True)
