"""One `[[imap]]` mailbox's settings (ingest/imap.py polls it). Validated with the rest
in config/settings.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from helpdesk.config.base import Section, is_loopback
from helpdesk.errors import ConfigError


class ImapSection(Section):
    """One `[[imap]]` mailbox polled by its own thread (ingest/imap.py)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                      description="Unique; names the mailbox in logs, status and spool routes.")
    host: str = Field(min_length=1)
    port: int = Field(0, ge=0, le=65535, description="0: 993 for ssl, else 143.")
    security: Literal["ssl", "starttls", "none"] = Field(
        "ssl", description="ssl = IMAPS; starttls; none only for loopback hosts.")
    username: str = Field(min_length=1)
    password: str = Field("", description="Prefer password_env or password_file.")
    password_env: str = Field("", description="Name of an environment variable holding it.")
    password_file: Path | None = Field(None, description="File whose first line is it.")
    oauth2_command: str = Field("", description="XOAUTH2: command printing an access token "
                                "(or JSON with access_token and expires_in).")
    oauth2_user: str = Field("", description="XOAUTH2 user; default: username.")
    folder: str = Field("INBOX", min_length=1)
    after: Literal["move", "flag", "delete"] = Field(
        "move", description="Once stored: move to move_to, flag \\Seen, or delete.")
    move_to: str = Field("Processed", min_length=1, description="Created if missing.")
    quarantine_folder: str = Field("Quarantine", min_length=1,
                                   description="Mails that keep failing are moved here.")
    queue: str | None = Field(None, description="Default queue for this mailbox.")
    ca_file: Path | None = Field(None, description="Trust this CA (e.g. a self-signed cert).")
    idle: bool = Field(True, description="Use IDLE when offered; else poll.")
    poll_interval: float = Field(60.0, gt=0, description="Seconds between polls without IDLE.")
    idle_refresh: float = Field(300.0, gt=0, lt=29 * 60,
                                description="Seconds before IDLE is renewed (RFC 2177: < 29 min).")
    batch_size: int = Field(100, ge=1, le=5000, description="Mails per UID FETCH.")
    timeout: float = Field(60.0, gt=0, description="Socket timeout in seconds.")
    stall_alert_after: float = Field(
        900.0, gt=0, validate_default=True,
        description="Alert the admins when not reached for this many seconds.")
    backoff_max: float = Field(300.0, gt=0, description="Longest wait between reconnects; "
                               "a failed login waits this long.")

    @model_validator(mode="before")
    @classmethod
    def _default_port(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("port"):
            data = {**data, "port": 993 if data.get("security", "ssl") == "ssl" else 143}
        return data

    @field_validator("security")
    @classmethod
    def _plain_only_on_loopback(cls, v: str, info: ValidationInfo) -> str:
        host = info.data.get("host", "")
        if v == "none" and host and not is_loopback(host):
            raise ValueError(f"'none' (no TLS) is only allowed for loopback hosts, not {host!r}")
        return v

    @model_validator(mode="after")
    def _one_credential(self) -> ImapSection:
        keys = ("password", "password_env", "password_file", "oauth2_command")
        given = [k for k in keys if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(keys)} "
                             f"(have: {', '.join(given) or 'none'})")
        return self

    @field_validator("stall_alert_after")
    @classmethod
    def _stall_after_refresh(cls, v: float, info: ValidationInfo) -> float:
        for key in ("idle_refresh", "poll_interval"):
            if key in info.data and info.data[key] >= v:
                raise ValueError(f"must be longer than {key} ({info.data[key]:g} s)")
        return v

    @property
    def login_user(self) -> str:
        return self.oauth2_user or self.username

    def secret(self) -> str:
        """The password from wherever the config says; ConfigError when it is missing."""
        if self.password:
            return self.password
        if self.password_env:
            value = os.environ.get(self.password_env, "")
            if not value:
                raise ConfigError(f"imap {self.name}: ${self.password_env} is empty or unset")
            return value
        if self.password_file:
            try:
                return self.password_file.read_text().splitlines()[0].strip()
            except (OSError, IndexError) as err:
                raise ConfigError(f"imap {self.name}: password_file {self.password_file}: "
                                  f"{getattr(err, 'strerror', None) or 'empty'}") from None
        raise ConfigError(f"imap {self.name}: no password configured")
