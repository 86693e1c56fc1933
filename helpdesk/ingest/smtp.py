"""aiosmtpd handler: check recipients at RCPT, spool at DATA, answer 250 only after fsync.

Size limits are aiosmtpd's own (data_size_limit answers 552); an unknown domain
gets 550 at RCPT so we are never an open relay; a spool that cannot be written
gets 451 so the sending MTA keeps the mail and tries again.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from aiosmtpd.smtp import SMTP, Envelope, Session

from helpdesk.config import Settings
from helpdesk.errors import TemporaryError
from helpdesk.spool import Envelope as SpoolEnvelope
from helpdesk.spool import Spool

log = logging.getLogger("helpdesk.smtp")


class IntakeHandler:
    def __init__(self, settings: Settings, spool: Spool,
                 on_spooled: Callable[[], None] | None = None) -> None:
        self.domains = set(settings.helpdesk.domains)
        self.spool = spool
        self.on_spooled = on_spooled
        self.in_flight = 0
        self.accepting = True
        self.lmtp = settings.smtp.lmtp

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if not self.accepting:
            return "421 4.3.2 Service shutting down, try again later"
        domain = address.rsplit("@", 1)[-1].lower() if "@" in address else ""
        if domain not in self.domains:
            log.info("refused recipient %s from %s", address, session.peer)
            return f"550 5.7.1 <{address}>: recipient not accepted here (not a relay)"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        status = await self._spool(session, envelope)
        if self.lmtp:
            # LMTP (RFC 2033): one reply per accepted recipient. The mail is spooled once
            # for all of them, so they share its fate (all 250, or all 451).
            return "\r\n".join([status] * max(1, len(envelope.rcpt_tos)))
        return status

    async def _spool(self, session: Session, envelope: Envelope) -> str:
        if not self.accepting:
            return "421 4.3.2 Service shutting down, try again later"
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        spool_env = SpoolEnvelope(
            route="smtp",
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            extra={"peer": str(session.peer[0]) if session.peer else "",
                   "helo": session.host_name or ""},
        )
        self.in_flight += 1
        try:
            name = await asyncio.to_thread(self.spool.put, raw, spool_env)
        except TemporaryError as err:
            log.error("451 for mail from %s: %s", envelope.mail_from, err)
            return "451 4.3.0 Mail could not be stored, try again later"
        finally:
            self.in_flight -= 1
        if self.on_spooled:
            self.on_spooled()
        return f"250 2.0.0 OK queued as {name.split('.', 1)[0]}"


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The STARTTLS context when a certificate is configured."""
    cfg = settings.smtp
    if not (cfg.tls_cert and cfg.tls_key):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    return context


def smtp_factory(settings: Settings, handler: IntakeHandler,
                 tls_context: object | None = None) -> Callable[[], SMTP]:
    cfg = settings.smtp

    def make() -> SMTP:
        kwargs: dict[str, object] = {
            "data_size_limit": cfg.max_message_size,
            "enable_SMTPUTF8": True,
            "decode_data": False,
            "hostname": settings.helpdesk.domain,
            "ident": "helpdesk ESMTP",
        }
        if tls_context is not None:
            kwargs["tls_context"] = tls_context
        if cfg.lmtp:
            from aiosmtpd.lmtp import LMTP

            return LMTP(handler, **kwargs)  # type: ignore[arg-type]
        return SMTP(handler, **kwargs)  # type: ignore[arg-type]

    return make
