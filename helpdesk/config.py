"""Load, validate and freeze the daemon's settings, once, at the edge.

Every key is documented here and in config/helpdesk.toml. An invalid file raises
ConfigError with one line naming the file, the key and what is wrong.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from helpdesk.config_sched import (
    EscalationSection,
    SchedulerSection,
    SlaPolicy,
    StaleSection,
    SurveySection,
    check_priorities,
)
from helpdesk.errors import ConfigError

ENV_CONFIG = "HELPDESK_CONFIG"
DEFAULT_CONFIG = Path("config/helpdesk.toml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HelpdeskSection(_Section):
    name: str = Field("Helpdesk", description="Display name used in mail From headers.")
    address: str = Field(
        "support@example.test", description="The address customers write to."
    )
    domains: tuple[str, ...] = Field(
        ("example.test",), description="Recipient domains accepted by the SMTP listener."
    )
    ticket_prefix: str = Field("HD", pattern=r"^[A-Za-z][A-Za-z0-9]{0,9}$")
    data_dir: Path = Field(Path("data"), description="Spool, raw mail, attachments, maildir.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means SQLite in data_dir.")
    secret: str = Field("", description="Signs reply tokens; env HELPDESK_SECRET wins.")
    default_queue: str = "support"
    admins: tuple[str, ...] = Field((), description="Addresses told of config and intake trouble.")
    autoreply_limit: int = Field(5, ge=0, description="Automatic replies per sender per hour.")
    reopen_window_days: int = Field(
        30, ge=0, description="Replies to tickets closed longer ago than this open a new ticket."
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


class SmtpSection(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(2525, ge=0, le=65535)
    max_message_size: int = Field(25 * 1024 * 1024, gt=0, description="Bytes; larger gets 552.")
    tls_cert: Path | None = Field(None, description="Certificate for optional STARTTLS.")
    tls_key: Path | None = None
    lmtp: bool = Field(False, description="Speak LMTP instead of SMTP (per-recipient answers).")


class OutgoingSection(_Section):
    relay_host: str = Field("", description="Empty: write outgoing mail to data_dir/maildir.")
    relay_port: int = Field(25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    username: str = ""
    password: str = Field("", description="env HELPDESK_RELAY_PASSWORD wins.")
    timeout: float = Field(30.0, gt=0)
    max_attempts: int = Field(12, ge=1, description="After this many failures a mail is dead.")
    backoff_base: float = Field(30.0, gt=0, description="Seconds before the first retry.")
    backoff_max: float = Field(3600.0, gt=0)
    lease: float = Field(
        120.0, gt=0, description="Seconds a daemon may hold a mail it is sending before "
        "another (or itself after a crash) retries it."
    )


class QueueSection(_Section):
    team: str = ""
    address: str = ""
    review: bool = False
    business_hours: dict[str, Any] | None = None
    sla: dict[str, SlaPolicy] | None = None

    _check_hours = field_validator("business_hours")(lambda v: _valid_hours(v))
    _check_sla = field_validator("sla")(lambda v: v and check_priorities(v))


class PathsSection(_Section):
    rules: Path | None = Field(None, description="Default: rules.toml beside helpdesk.toml.")
    rules_dir: Path | None = Field(None, description="Default: rules.d/ beside helpdesk.toml.")
    agents: Path | None = Field(None, description="Default: agents.toml beside helpdesk.toml.")
    templates: Path | None = Field(None, description="Site templates, searched first.")


class LogSection(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_lines: bool = Field(False, alias="json")


class Settings(_Section):
    helpdesk: HelpdeskSection = HelpdeskSection()
    smtp: SmtpSection = SmtpSection()
    outgoing: OutgoingSection = OutgoingSection()
    queue: dict[str, QueueSection] = Field(default_factory=dict)
    paths: PathsSection = PathsSection()
    log: LogSection = LogSection()
    imap: list[dict[str, Any]] = Field(default_factory=list)
    sla: dict[str, SlaPolicy] = Field(default_factory=dict)
    business_hours: dict[str, Any] | None = None
    scheduler: SchedulerSection = SchedulerSection()
    escalation: EscalationSection = EscalationSection()
    survey: SurveySection = SurveySection()
    stale: StaleSection = StaleSection()
    agents_auth: dict[str, Any] = Field(default_factory=dict)
    http: dict[str, Any] = Field(default_factory=dict)

    source: Annotated[Path | None, Field(exclude=True)] = None

    _check_hours = field_validator("business_hours")(lambda v: _valid_hours(v))
    _check_sla = field_validator("sla")(lambda v: check_priorities(v))

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
        tmp.write_text(secrets.token_hex(32))
        tmp.chmod(0o600)
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
