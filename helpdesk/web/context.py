"""What every desk route needs, built once per app and kept in `app.state.web`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from helpdesk.config.agents import Directory
from helpdesk.config.settings import Settings
from helpdesk.web.sessions import CookieSigner


def default_base_url(settings: Settings, port: int | None = None) -> str:
    """Where links in mail point (Settings.public_base_url: one rule for every link)."""
    return settings.public_base_url(port)


def secure_cookie(settings: Settings) -> bool:
    """Whether our cookies (the desk's, the portal's) are marked Secure: [web] secure_cookie."""
    choice = settings.web.secure_cookie
    if choice == "auto":
        return settings.http.public_url.startswith("https:")
    return choice == "yes"


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    engine: Engine
    directory: Callable[[], Directory]  # the agents in force (reloaded on HUP)
    on_outbox: Callable[[], None]  # a mail was queued: wake the outbox
    base_url: Callable[[], str]
    secret: bytes  # settings.secret, read once ([helpdesk] secret, or data_dir/secret)
    # a request was spooled (the desk's "new ticket" for a customer, the API's create):
    # wake the pipeline instead of leaving it to its next idle look
    on_spooled: Callable[[], None] = lambda: None

    @property
    def signer(self) -> CookieSigner:
        return CookieSigner(self.secret)

    @property
    def secure_cookie(self) -> bool:
        return secure_cookie(self.settings)
