"""Where the outbox hands its mail: the SMTP relay, or a local maildir when none is set.

A transport sends one claimed row at a time and raises TemporaryError (retry later) or
PermanentError (dead); outbox.py decides what that means for the row and the pass.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from helpdesk.config.settings import Settings
from helpdesk.durable import write_atomic
from helpdesk.errors import PermanentError, TemporaryError

log = logging.getLogger("helpdesk.outgoing.outbox")


@dataclass(frozen=True, slots=True)
class Claimed:
    """An outbox row leased to this daemon: what sending and recording it need, read
    with plain SQL (an ORM object per row cost more than sending the mail)."""

    id: int
    kind: str
    ticket_id: int | None
    mail_from: str
    rcpt_tos: list[str]
    message_id: str
    msgid_key: str
    raw: bytes
    created_at: datetime
    attempts: int  # this one included
    # the row as it was before the claim, to give it back untried
    was_status: str
    was_attempts: int
    was_due: datetime


class Transport:
    """Sends one mail; raises TemporaryError (retry) or PermanentError (dead)."""

    def send(self, row: Claimed) -> None:
        raise NotImplementedError

    def close(self) -> None:
        return None


class MaildirTransport(Transport):
    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def send(self, row: Claimed) -> None:
        name = f"outbox-{row.id}.{row.msgid_key[:16]}.{socket.gethostname()}"
        target = self.root / "new" / name
        if target.exists() or (self.root / "cur" / name).exists():
            return  # delivered before a crash kept us from recording it
        envelope = f"X-Helpdesk-Envelope-To: {', '.join(row.rcpt_tos)}\n".encode()
        # CRLF is for the wire; a maildir file uses the local convention (LF), as
        # Postfix's and Dovecot's do: mail clients reading it (s-nail) build broken
        # replies from CRLF files. Durable before the outbox records the row as sent.
        write_atomic(target, envelope + _local_line_endings(row.raw),
                     tmp=self.root / "tmp" / name)


def _local_line_endings(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


# the name smtplib works out for EHLO (socket.getfqdn(): a reverse lookup) on the first
# connection, given to the next ones: a pass of the outbox opens one
_ehlo_name: dict[str, str] = {}


class RelayTransport(Transport):
    """smtplib over one connection reused for a pass of the outbox: a mail the relay
    refuses (smtplib has sent RSET after it) leaves the connection to the next one."""

    def __init__(self, settings: Settings) -> None:
        self.cfg = settings.outgoing
        self.password = settings.relay_password
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._conn is not None:
            return self._conn
        cfg = self.cfg
        try:
            if cfg.ssl:
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    cfg.relay_host, cfg.relay_port, timeout=cfg.timeout,
                    local_hostname=_ehlo_name.get("name"),
                    context=ssl.create_default_context())
            else:
                conn = smtplib.SMTP(cfg.relay_host, cfg.relay_port, timeout=cfg.timeout,
                                    local_hostname=_ehlo_name.get("name"))
                if cfg.starttls:
                    conn.starttls(context=ssl.create_default_context())
            _ehlo_name["name"] = conn.local_hostname
            if cfg.username:
                conn.login(cfg.username, self.password)
        except smtplib.SMTPAuthenticationError as err:
            raise TemporaryError(
                f"relay login refused: {err.smtp_code} {err.smtp_error!r}") from err
        except (OSError, smtplib.SMTPException) as err:
            raise TemporaryError(f"relay {cfg.relay_host}:{cfg.relay_port} unreachable: {err}") \
                from err
        self._conn = conn
        return conn

    def send(self, row: Claimed) -> None:
        conn = self._connect()
        try:
            refused = conn.sendmail(row.mail_from, row.rcpt_tos, row.raw,
                                    mail_options=_mail_options(row))
        except smtplib.SMTPRecipientsRefused as err:
            codes = {code for code, _ in err.recipients.values()}
            self._after_refusal(421 if 421 in codes else 0)
            if all(400 <= c < 500 for c in codes):
                raise TemporaryError(f"recipients deferred: {err.recipients}") from err
            raise PermanentError(f"recipients refused: {err.recipients}") from err
        except smtplib.SMTPResponseException as err:
            self._after_refusal(err.smtp_code)
            text = f"{err.smtp_code} {err.smtp_error.decode(errors='replace')}"
            if 400 <= err.smtp_code < 500:
                raise TemporaryError(f"relay said {text}") from err
            raise PermanentError(f"relay said {text}") from err
        except (OSError, smtplib.SMTPException) as err:
            self.close()
            raise TemporaryError(f"relay connection failed: {err}") from err
        if refused:
            log.warning("outbox %s: some recipients refused: %s", row.id, refused)

    def _after_refusal(self, code: int) -> None:
        """After a refused MAIL, RCPT or DATA smtplib has reset the transaction (RSET),
        or closed the socket on a 421 or a failed RSET: keep the connection only when it
        is still open and the relay did not say it is closing it."""
        conn = self._conn
        if conn is not None and (code == 421 or conn.sock is None):
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._conn.quit()
            self._conn = None


def _mail_options(row: Claimed) -> list[str]:
    options = []
    if not row.raw.isascii():
        options.append("BODY=8BITMIME")
    if not all(a.isascii() for a in (row.mail_from, *row.rcpt_tos)):
        options.append("SMTPUTF8")
    return options


def transport_for(settings: Settings) -> Transport:
    if settings.outgoing.relay_host:
        return RelayTransport(settings)
    return MaildirTransport(settings.data_dir / "maildir")
