"""Load, validate and freeze the daemon's settings, once, at the edge.

Every key is documented here and in config/helpdesk.toml. An invalid file raises
ConfigError with one line naming the file, the key and what is wrong.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from helpdesk.config.base import Section
from helpdesk.config.imap import ImapSection
from helpdesk.config.kb import KbSection
from helpdesk.config.schedule import (
    Duration,
    EscalationSection,
    SchedulerSection,
    SlaPolicy,
    StaleSection,
    SurveySection,
    check_priorities,
)
from helpdesk.config.web import ApiHookSection, ApiSection, HttpSection, PortalSection, WebSection
from helpdesk.config.web_form import WebFormSection
from helpdesk.errors import ConfigError

ENV_CONFIG = "HELPDESK_CONFIG"
DEFAULT_CONFIG = Path("config/helpdesk.toml")


class HelpdeskSection(Section):
    name: str = Field("Helpdesk", description="Display name used in mail From headers.")
    address: str = Field(
        "support@example.test", description="The address customers write to."
    )
    domains: tuple[str, ...] = Field(
        ("example.test",), description="Recipient domains accepted by the SMTP listener."
    )
    ticket_prefix: str = Field("HD", pattern=r"^[A-Za-z][A-Za-z0-9]{0,9}$",
                               description="Ticket ids look like HD-1042.")
    data_dir: Path = Field(Path("data"), description="Spool, raw mail, attachments, maildir.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in data_dir.")
    secret: str = Field("", description="Signs reply tokens; env HELPDESK_SECRET wins.")
    default_queue: str = Field("support", description="Queue for mail that no address or "
                               "rule routes elsewhere.")
    admins: tuple[str, ...] = Field((), description="Addresses told of config and intake trouble.")
    autoreply_limit: int = Field(
        5, ge=0, description="Loop protection: acknowledgements per sender per hour of new "
        "mail that answers our own automatic mail (an autoresponder that ignores "
        "Auto-Submitted looks like that).")
    ack_limit: int = Field(
        20, ge=0, description="Acknowledgements of new mail per sender per hour, so a flood "
        "is bounded; our other automatic mail (status notices, surveys) does not count.")
    reopen_window_days: int = Field(
        30, ge=0, description="Replies to tickets resolved longer ago than this open a new "
        "linked ticket (closed tickets always do); 0: no window."
    )
    reveal_agent_address: bool = Field(
        False, description="Replies to customers show the agent's name and address in "
        "Reply-To; by default they come from the helpdesk alone."
    )
    max_kept_cc: int = Field(
        10, ge=0, description="An agent's reply keeps at most this many of the people the "
        "customer had on Cc; the cut is recorded in the ticket's history."
    )

    @field_validator("address")
    @classmethod
    def _address_has_domain(cls, v: str) -> str:
        if "@" not in v:
            raise ValueError("must be an email address like support@example.test")
        return v

    @field_validator("domains")
    @classmethod
    def _lower_domains(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one accepted domain is needed")
        return tuple(d.lower() for d in v)

    @property
    def local_part(self) -> str:
        return self.address.split("@", 1)[0]

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[1].lower()


class SmtpSection(Section):
    enabled: bool = Field(True, description="Run the SMTP (or LMTP) listener.")
    host: str = Field("127.0.0.1", description="Listen address.")
    port: int = Field(2525, ge=0, le=65535, description="Listen port; a socket passed by "
                      "systemd (helpdesk.socket) is used instead when present.")
    max_message_size: int = Field(25 * 1024 * 1024, gt=0, description="Bytes; larger gets 552.")
    tls_cert: Path | None = Field(None, description="Certificate for optional STARTTLS.")
    tls_key: Path | None = Field(None, description="Private key for tls_cert.")
    lmtp: bool = Field(False, description="Speak LMTP instead of SMTP (per-recipient answers).")
    separate_process: bool = Field(
        True, description="Run the listener in its own process, so answers never wait for "
        "the pipeline's CPU work."
    )
    max_recipients: int = Field(
        100, ge=1, description="Recipients per transaction (RFC 5321's minimum is 100); "
        "more get 452, and the sender delivers them in a later transaction.")
    max_connections: int = Field(
        100, ge=1, description="SMTP sessions at once; a connection beyond this gets 421 "
        "(try again later) and is closed.")
    idle_timeout: float = Field(
        300.0, gt=0, description="Seconds a client may stay silent before the session is "
        "closed (RFC 5321 4.5.3.2.7 suggests 5 minutes).")
    session_timeout: float = Field(
        1800.0, gt=0, description="Seconds a session may last at all, however busy it "
        "keeps itself (NOOP resets the idle timeout, not this); then 421 and closed.")
    max_noops: int = Field(
        20, ge=1, description="NOOP, HELP, VRFY and EXPN each answered this many times per "
        "session; one more gets 421 and the session is closed.")


class OutgoingSection(Section):
    relay_host: str = Field("", description="Empty: write outgoing mail to data_dir/maildir.")
    relay_port: int = Field(25, ge=1, le=65535)
    starttls: bool = Field(False, description="STARTTLS after connecting.")
    ssl: bool = Field(False, description="Implicit TLS (port 465).")
    username: str = Field("", description="Relay login; empty: no AUTH.")
    password: str = Field("", description="env HELPDESK_RELAY_PASSWORD wins.")
    timeout: float = Field(30.0, gt=0, description="Seconds per relay operation.")
    give_up_after_hours: float = Field(
        120.0, gt=0, description="A mail the relay keeps deferring is given up (dead, admins "
        "told) after this long, like an MTA's queue lifetime; a 5xx answer gives up at once."
    )
    backoff_base: float = Field(30.0, gt=0, description="Seconds before the first retry.")
    backoff_max: float = Field(3600.0, gt=0, description="Cap on the retry delay (it "
                               "doubles after each failure).")
    lease: float = Field(
        120.0, gt=0, description="Seconds a daemon may hold a mail it is sending before "
        "another (or itself after a crash) retries it."
    )
    max_message_size: int = Field(
        20 * 1024 * 1024, ge=32 * 1024, description="Bytes; no mail we send is larger. "
        "What would exceed it is left out with a note in the text: attachments that do "
        "not fit, then the end of the text."
    )
    sent_text_kept: Duration = Field(
        timedelta(days=30), description="How long the full text of a sent mail (its "
        "attachments included) stays in the outbox; then the scheduler drops it. The row "
        "stays: replies to the mail still thread, and still prove the agent it went to. "
        "Mail given up (dead) keeps its text."
    )


class QueueSection(Section):
    team: str = ""
    address: str = ""
    review: bool = False
    business_hours: dict[str, Any] | None = None
    sla: dict[str, SlaPolicy] | None = None
    templates: Path | None = Field(None, description="This queue's templates, searched "
                                   "before [paths] templates.")

    _check_hours = field_validator("business_hours")(lambda v: _valid_hours(v))
    _check_sla = field_validator("sla")(lambda v: v and check_priorities(v))


class AgentsAuthSection(Section):
    require_authentication_results: bool = Field(
        False, description="An agent's reply counts only when an Authentication-Results "
        "header shows dkim=pass or spf=pass for the agent's domain."
    )
    trusted_authserv_ids: tuple[str, ...] = Field(
        (), description="Only Authentication-Results headers added by these servers count "
        "(empty: any); senders can write the header themselves, the receiving MTA cannot be "
        "impersonated."
    )


class NotifySection(Section):
    """What notifications to agents carry of the customer's mail."""

    body_max_bytes: int = Field(
        64 * 1024, ge=1024, description="The customer's text in a notification is cut "
        "after this many bytes, with a note of how much more there is and where the whole "
        "ticket is."
    )
    attach_max_bytes: int = Field(
        2 * 1024 * 1024, ge=0, description="The customer's attachments up to this size are "
        "attached to notifications; larger ones are listed as kept on the ticket."
    )
    attach_total_bytes: int = Field(
        5 * 1024 * 1024, ge=0, description="At most this many bytes of attachments per "
        "notification; the ones that no longer fit are listed as kept on the ticket."
    )


class PathsSection(Section):
    rules: Path | None = Field(None, description="Default: rules.toml beside helpdesk.toml.")
    rules_dir: Path | None = Field(None, description="Default: rules.d/ beside helpdesk.toml.")
    agents: Path | None = Field(None, description="Default: agents.toml beside helpdesk.toml.")
    replies: Path | None = Field(None, description="Canned replies (NAME.md, for #reply "
                                 "NAME). Default: replies/ beside helpdesk.toml.")
    templates: Path | None = Field(None, description="Site templates, searched after a "
                                   "queue's and before the shipped ones.")


class RulesSection(Section):
    time_budget: float = Field(
        0.25, gt=0, le=60, description="Seconds all routing rules together may spend on "
        "the regular expressions of one mail. A rule whose search runs out of time (each "
        "search also stops after 50 ms) is not applied, and the ticket's history, the log "
        "and `helpdesk rules test` say so.")


FREE_MAIL = ("gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com",
             "msn.com", "yahoo.com", "ymail.com", "icloud.com", "me.com", "mac.com",
             "aol.com", "gmx.de", "gmx.net", "gmx.at", "gmx.ch", "web.de", "t-online.de",
             "proton.me", "protonmail.com", "mail.com", "yandex.ru", "mail.ru", "zoho.com",
             "fastmail.com", "posteo.de", "mailbox.org", "laposte.net", "orange.fr",
             "free.fr", "libero.it", "qq.com", "163.com")


class TicketOpsSection(Section):
    """Merging, splitting and linking tickets (agents/ops_commands); customers'
    organisations (store/contacts_ops)."""

    unmerge_window: Duration = Field(timedelta(days=7), description="An admin may undo a "
                                     "merge (#unmerge, `helpdesk tickets unmerge`) for this "
                                     "long after it was made; 0s: never.")
    free_mail_domains: tuple[str, ...] = Field(
        FREE_MAIL, description="Mail providers anyone can sign up with: their customers "
        "belong to no organisation (a subdomain counts as its domain).")
    organisations: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="Organisations by name and their mail domains, "
        "e.g. bigcorp = [\"bigcorp.com\", \"bigcorp.de\"]; any other domain (not free "
        "mail) is an organisation named like the domain.")

    @field_validator("free_mail_domains")
    @classmethod
    def _lower_domains(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(d.strip().lower().lstrip("@") for d in v if d.strip())

    @field_validator("organisations")
    @classmethod
    def _organisations(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        seen: dict[str, str] = {}
        out = {}
        for name, domains in v.items():
            if not domains:
                raise ValueError(f"organisation {name!r} has no domains")
            out[name.lower()] = tuple(d.strip().lower().lstrip("@") for d in domains)
            for d in out[name.lower()]:
                if d in seen and seen[d] != name.lower():
                    raise ValueError(f"domain {d!r} is in both {seen[d]!r} and {name!r}")
                seen[d] = name.lower()
        return out


class LogSection(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lines below this level are dropped.")
    json_lines: bool = Field(False, alias="json", description="One JSON object per line, "
                             "with ticket and message_id fields where they apply.")


class Settings(Section):
    helpdesk: HelpdeskSection = HelpdeskSection()
    smtp: SmtpSection = SmtpSection()
    outgoing: OutgoingSection = OutgoingSection()
    queue: dict[str, QueueSection] = Field(default_factory=dict)
    paths: PathsSection = PathsSection()
    rules: RulesSection = RulesSection()
    log: LogSection = LogSection()
    imap: list[ImapSection] = Field(default_factory=list)
    sla: dict[str, SlaPolicy] = Field(default_factory=dict)
    business_hours: dict[str, Any] | None = None
    scheduler: SchedulerSection = SchedulerSection()
    escalation: EscalationSection = EscalationSection()
    survey: SurveySection = SurveySection()
    stale: StaleSection = StaleSection()
    agents_auth: AgentsAuthSection = AgentsAuthSection()
    notify: NotifySection = NotifySection()
    http: HttpSection = HttpSection()
    web: WebSection = WebSection()
    portal: PortalSection = PortalSection()
    api: ApiSection = ApiSection()
    api_hook: list[ApiHookSection] = Field(default_factory=list)
    kb: KbSection = KbSection()
    ticket_ops: TicketOpsSection = TicketOpsSection()
    web_form: WebFormSection = WebFormSection()

    source: Annotated[Path | None, Field(exclude=True)] = None

    @model_validator(mode="before")
    @classmethod
    def _one_public_url(cls, data: Any) -> Any:
        """[survey] public_url (once the survey links' own base URL) is read as [http]
        public_url: every link to the public listener has one base, so a proxy set up for
        the status pages cannot leave the survey links pointing at the listener itself."""
        survey = data.get("survey") if isinstance(data, dict) else None
        if not isinstance(survey, dict) or "public_url" not in survey:
            return data
        survey = dict(survey)
        old = survey.pop("public_url")
        http = dict(data.get("http") or {})
        new = http.get("public_url", "")
        if new and isinstance(old, str) and new.rstrip("/") != old.rstrip("/"):
            raise ValueError(f"[survey] public_url ({old}) and [http] public_url ({new}) "
                             "differ: every link in mail has one base now; keep [http] "
                             "public_url and remove [survey] public_url")
        if not new:
            http["public_url"] = old
        return {**data, "survey": survey, "http": http}

    @field_validator("imap")
    @classmethod
    def _unique_imap_names(cls, v: list[ImapSection]) -> list[ImapSection]:
        names = [entry.name for entry in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate mailbox name(s): {', '.join(dupes)}")
        return v

    _check_hours = field_validator("business_hours")(lambda v: _valid_hours(v))
    _check_sla = field_validator("sla")(lambda v: check_priorities(v))

    @field_validator("api_hook")
    @classmethod
    def _unique_hook_names(cls, v: list[ApiHookSection]) -> list[ApiHookSection]:
        names = [hook.name for hook in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate hook name(s): {', '.join(dupes)}")
        return v

    @property
    def data_dir(self) -> Path:
        return self.helpdesk.data_dir

    @property
    def database_url(self) -> str:
        url = os.environ.get("HELPDESK_DATABASE_URL") or self.helpdesk.database_url
        return url or f"sqlite:///{(self.data_dir / 'helpdesk.db').resolve()}"

    @property
    def secret(self) -> bytes:
        value = os.environ.get("HELPDESK_SECRET") or self.helpdesk.secret
        if value:
            return value.encode()
        return _generated_secret(self.data_dir)

    @property
    def relay_password(self) -> str:
        return os.environ.get("HELPDESK_RELAY_PASSWORD") or self.outgoing.password

    def beside_config(self, explicit: Path | None, default_name: str) -> Path:
        """Resolve an admin file: explicit path, else next to helpdesk.toml."""
        if explicit is not None:
            return explicit
        base = self.source.parent if self.source else Path("config")
        return base / default_name

    @cached_property
    def _own_parts(self) -> tuple[frozenset[str], frozenset[str]]:
        """(local parts, domains) of our own addresses: derived once, since is_own_address
        runs for every sender, participant and Cc address of every mail."""
        mailboxes = [self.helpdesk.address, *(q.address for q in self.queue.values()),
                     *(box.username for box in self.imap)]
        ours = [m.lower().rpartition("@") for m in mailboxes if "@" in m]
        domains = frozenset({*self.helpdesk.domains, *(d for _, _, d in ours)})
        return frozenset(lp for lp, _, _ in ours), domains

    def hook_events_wanted(self) -> frozenset[str]:
        """The webhook events some [[api_hook]] is sent: the only ones worth recording
        (outgoing/hooks.py would drop the rest unsent)."""
        return frozenset(kind for hook in self.api_hook for kind in hook.events)

    def public_base_url(self, port: int | None = None) -> str:
        """Where links in mail point (status pages, surveys, the desk, sign-in links):
        [http] public_url, else
        the public listener itself (with the port it really got, when configured as 0)."""
        if self.http.public_url:
            return self.http.public_url.rstrip("/")
        host, _, configured = self.http.public.rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port or configured}"

    def is_own_address(self, address: str) -> bool:
        """Whether `address` is one of this helpdesk's own: the helpdesk's address, a
        queue's or an IMAP mailbox's, at any accepted domain (the aliases), in any case,
        with or without a +suffix (our signed reply addresses are such). The one test
        threading, acknowledgements, notifications and Cc keeping all use."""
        local, at, domain = address.strip().lower().rpartition("@")
        if not at:
            return False
        locals_, domains = self._own_parts
        return domain in domains and local.split("+", 1)[0] in locals_

    @cached_property
    def derived(self) -> dict[str, Any]:
        """What other modules derive from this Settings and keep with it (mailout's
        template loader), so a second Settings in the process shares none of it."""
        return {}

    def queue_for_address(self, address: str) -> str | None:
        wanted = address.lower()
        for name, queue in self.queue.items():
            if queue.address and queue.address.lower() == wanted:
                return name
        return None


def _valid_hours(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Business hours stay a table (rules and SLA parse it) but are checked here, on load."""
    if value:
        from helpdesk.hours import HoursError, parse_hours

        try:
            parse_hours(value)
        except HoursError as err:
            raise ValueError(str(err)) from None
    return value


def _generated_secret(data_dir: Path) -> bytes:
    """With no secret configured, keep one random secret per data dir across restarts."""
    path = data_dir / "secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        # created 0600, not chmod-ed after writing: never readable by others, even briefly
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        os.replace(tmp, path)
    return path.read_text().strip().encode()


def _describe(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key (misspelt?)"
    elif "input" in first and not isinstance(first["input"], dict | list):
        msg = f"{msg} (got {first['input']!r})"
    more = len(err.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{path}: {key}: {msg}{suffix}"


def parse(data: dict[str, Any], source: Path | None = None) -> Settings:
    """Validate a config mapping; raises ConfigError naming file, key and problem."""
    where = source or Path("<config>")
    try:
        settings = Settings.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(where, err)) from None
    return settings.model_copy(update={"source": source})


def load(path: Path | str | None = None) -> Settings:
    """Load the config file: explicit path, else $HELPDESK_CONFIG, else config/helpdesk.toml."""
    chosen = Path(path or os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG)
    try:
        with chosen.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{chosen}: file not found (use --config or ${ENV_CONFIG})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{chosen}: not valid TOML: {err}") from None
    return parse(data, chosen.resolve())
