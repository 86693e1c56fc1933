"""The HTTP sections of the settings: the two listeners ([http]), the agent desk
([web]), the customers' portal ([portal]), the JSON API ([api]) and its webhooks
([[api_hook]]). Validated with the rest in config/settings.py.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from helpdesk.config.base import Section, check_host_port
from helpdesk.config.schedule import Duration


class HttpSection(Section):
    """The daemon's two HTTP listeners, kept apart: what the public may reach through a
    proxy (the desk, status pages, surveys, the API) never shares a socket with what
    tells how the daemon runs (/healthz, /metrics)."""

    listen: str = Field(
        "127.0.0.1:8026", description="Ops listener, host:port for /healthz and /metrics "
        "only; empty: none. Keep it on loopback (or a monitoring network): it tells "
        "anyone who reaches it about your mail flow.")
    public: str = Field(
        "127.0.0.1:8025", description="Public listener, host:port for the pages customers "
        "open (status pages, surveys, the desk; public_url is how they reach it, usually "
        "through a reverse proxy). Started only when something public is enabled; never serves "
        "/healthz or /metrics.")
    public_url: str = Field(
        "", description="Base URL of every link to the public listener in mail (status "
        "pages, surveys, the desk's sign-in links): how people reach [http] public, usually "
        "https through a reverse proxy; empty: http:// and [http] public. ([survey] "
        "public_url, the old key for the survey links alone, is read as this one.)")
    head_timeout: float = Field(
        10.0, gt=0, le=300, description="Seconds a client of either listener has to send "
        "a whole request head after connecting (or after its last answer); a silent or "
        "trickling connection is closed, so idle sockets cannot use up the daemon's file "
        "descriptors.")
    max_connections: int = Field(
        500, ge=1, description="Connections (and requests in progress) each listener "
        "serves at once; past it a request is answered 503 at once. Keep it well under "
        "the daemon's open-file limit (systemd: LimitNOFILE).")
    max_outbox_delay: float = Field(
        3600.0, gt=0, description="/healthz reports failure when an outgoing mail has been "
        "due for longer than this many seconds (relay down).")

    _host_port = field_validator("listen", "public")(lambda v: check_host_port(v))

    @model_validator(mode="after")
    def _apart(self) -> HttpSection:
        same = self.listen and self.listen == self.public and not self.listen.endswith(":0")
        if same:
            raise ValueError(f"listen and public are both {self.listen}: /healthz and "
                             f"/metrics must not be served on the public listener")
        return self


class WebSection(Section):
    """The agent desk under /desk on the public listener (helpdesk/web/)."""

    enabled: bool = Field(False, description="Serve the desk (and start the public "
                          "listener for it).")
    login_link_valid: Duration = Field(timedelta(minutes=15), description="A sign-in link "
                                       "works once, within this long after it was mailed.")
    session_valid: Duration = Field(timedelta(days=7), description="A sign-in lasts this "
                                    "long; then the agent signs in again.")
    secure_cookie: Literal["auto", "yes", "no"] = Field(
        "auto", description="Mark the sign-in cookie Secure (sent over https only); auto: "
        "when [http] public_url starts with https.")
    signin_window: Duration = Field(timedelta(minutes=15), description="Sign-in attempts "
                                    "are counted over this window.")
    signin_per_address: int = Field(5, ge=1, description="Sign-in attempts (links asked "
                                    "for, passwords tried) per address or name per window.")
    signin_per_client: int = Field(20, ge=1, description="Sign-in attempts per client IP "
                                   "address per window, whatever the address.")


class PortalSection(Section):
    """The customer's status pages under /portal on the public listener
    (helpdesk/web/portal/): every mail to a customer links their ticket's page."""

    enabled: bool = Field(False, description="Serve the status pages (and start the "
                          "public listener for them); mail to customers carries a signed "
                          "link to their ticket's page.")
    name: str = Field("", description="The name the pages show; empty: [helpdesk] name.")
    logo_url: str = Field("", description="An image shown above every page: a path on "
                          "this listener or an https URL (its origin is allowed by the "
                          "pages' Content-Security-Policy); empty: none.")
    colour: str = Field("#1f4e8c", pattern=r"^#[0-9A-Fa-f]{6}$", description="The brand "
                        "colour (headings, buttons, links) as #rrggbb.")
    background: str = Field("#ffffff", pattern=r"^#[0-9A-Fa-f]{6}$", description="The "
                            "page background as #rrggbb.")
    link_valid_days: int = Field(30, ge=1, le=3650, description="A link to a ticket's page "
                                 "or to a customer's list of tickets works this many days "
                                 "after the mail that carried it; rotating [helpdesk] secret "
                                 "ends every link at once.")
    show_agent_names: bool = Field(True, description="The pages name the agent working on "
                                   "the ticket and the author of each reply; off: the "
                                   "helpdesk's name only.")
    show_agent_addresses: bool = Field(False, description="The pages show agents' email "
                                       "addresses beside their names.")
    links_per_hour: int = Field(3, ge=1, description="Mailed links (a list of tickets, a "
                                "fresh ticket link) per customer address per hour, and ten "
                                "times as many asks per client IP address.")

    @field_validator("logo_url")
    @classmethod
    def _logo(cls, v: str) -> str:
        if v and not (v.startswith("/") and not v.startswith("//")) \
                and not v.startswith("https://"):
            raise ValueError("must be a path on this listener (/logo.png) or an https URL")
        return v


class ApiSection(Section):
    """The JSON API under /api/v1 on the public listener (helpdesk/web/api/, docs/api.md).
    Clients present a token made by `helpdesk api token create`; the token acts as its
    agent, with that agent's queues and role."""

    enabled: bool = Field(False, description="Serve the API (and start the public listener "
                          "for it).")
    rate_limit: int = Field(120, ge=1, description="Requests per token per rate_window; "
                            "more get 429 with Retry-After. Counted in each daemon's memory.")
    rate_window: Duration = Field(timedelta(minutes=1), description="The window rate_limit "
                                  "counts over.")
    page_size: int = Field(50, ge=1, le=500, description="Items per page of a list when the "
                           "client asks for no `limit` (and the most it may ask for is 4 "
                           "times this).")
    hook_timeout: float = Field(10.0, gt=0, description="Seconds a webhook receiver has to "
                                "answer one delivery.")
    hook_give_up_after: Duration = Field(timedelta(days=3), description="A delivery its "
                                         "receiver keeps refusing is given up (dead, kept in "
                                         "`helpdesk api hooks log`) after this long.")
    hook_backoff_max: Duration = Field(timedelta(hours=1), description="The longest wait "
                                       "between two tries of one delivery (it doubles from "
                                       "10 seconds).")
    hook_log_kept: Duration = Field(timedelta(days=30), description="How long a webhook "
                                    "delivery stays in `helpdesk api hooks log`, from its "
                                    "event; then the scheduler deletes it, once sent or "
                                    "given up, and the event with its last delivery.")


HOOK_EVENTS = ("ticket.created", "ticket.replied", "ticket.status_changed")


class ApiHookSection(Section):
    """A webhook: each event is POSTed to `url` as JSON, signed with HMAC-SHA256 of
    `secret` (header X-Helpdesk-Signature), through an outbox with retries."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$",
                      description="Names the hook in the delivery log; keep it stable.")
    url: str = Field(pattern=r"^https?://\S+$", description="Where events are POSTed.")
    secret: str = Field("", description="The signing key shared with the receiver; "
                        "`secret_env` names an environment variable holding it instead.")
    secret_env: str = Field("", description="Environment variable with the secret (wins).")
    events: tuple[Literal["ticket.created", "ticket.replied", "ticket.status_changed"],
                  ...] = Field(HOOK_EVENTS, description="The events sent to this hook.")

    @model_validator(mode="after")
    def _has_secret(self) -> ApiHookSection:
        if not (self.secret or self.secret_env):
            raise ValueError(f"hook {self.name}: a secret (or secret_env) is required: "
                             "the receiver checks every event's signature with it")
        return self

    @property
    def key(self) -> bytes:
        if self.secret_env:
            return os.environ.get(self.secret_env, "").encode()
        return self.secret.encode()
