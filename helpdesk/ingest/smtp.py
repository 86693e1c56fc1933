"""aiosmtpd handler: check recipients at RCPT, spool at DATA, answer 250 only after fsync.

Size limits are aiosmtpd's own (data_size_limit answers 552); an unknown domain
gets 550 at RCPT so we are never an open relay; a spool that cannot be written
gets 451 so the sending MTA keeps the mail and tries again.

The listener faces the internet, so what one client may take is bounded
([smtp] in config/settings.py): recipients per transaction (452 beyond, RFC 5321 4.5.3.1.8),
sessions at once (421 beyond), silence (idle_timeout), a session's whole length
(session_timeout, which NOOP cannot extend) and NOOP/HELP/VRFY/EXPN per session.

Two things that look odd are accepted on purpose:
- `RCPT TO:<postmaster>` without a domain (RFC 5321 4.5.1 requires it): it is stored
  as mail to postmaster@<our domain> and becomes a ticket in the default queue, where
  people read it (a rule can route it elsewhere).
- Lines longer than RFC 5322's 998 characters: HTML mail from real programs has them.
  aiosmtpd answers such a mail "500 Line too long" by default; like Postfix we take it
  and store it intact. Only the message size limit applies (a line longer than the whole
  limit is refused, as the mail would be).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from helpdesk.errors import TemporaryError
from helpdesk.spool import Envelope as SpoolEnvelope
from helpdesk.spool import Spool

if TYPE_CHECKING:  # the listener process runs without pydantic (smtp_process.py)
    from helpdesk.config.settings import Settings

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
        self.max_recipients = settings.smtp.max_recipients
        self.postmaster = f"postmaster@{settings.helpdesk.domain}"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if not self.accepting:
            return "421 4.3.2 Service shutting down, try again later"
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return "452 4.5.3 Too many recipients"
        if address.lower() == "postmaster":
            address = self.postmaster  # RFC 5321 4.5.1: <postmaster> needs no domain
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


class _Gate:
    """The sessions one listener holds; a connection beyond the cap is turned away."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open = 0

    def admit(self) -> bool:
        if self.open >= self.cap:
            return False
        self.open += 1
        return True

    def leave(self) -> None:
        self.open -= 1


class _Bounded:
    """Connection cap and session deadline around aiosmtpd's SMTP or LMTP protocol."""

    loop: Any
    transport: Any
    session: Session | None

    def __init__(self, handler: IntakeHandler, *, gate: _Gate, session_timeout: float,
                 line_length_limit: int, **kwargs: Any) -> None:
        # read by SMTP.__init__ (the stream reader's limit) and by smtp_DATA
        self.line_length_limit = line_length_limit
        self._gate = gate
        self._session_timeout = session_timeout
        self._admitted = False
        self._deadline: asyncio.TimerHandle | None = None
        super().__init__(handler, **kwargs)  # type: ignore[call-arg]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._admitted:  # not the second call that STARTTLS makes
            if not self._gate.admit():
                peer = transport.get_extra_info("peername")
                log.warning("refused connection from %s: %d sessions open", peer, self._gate.cap)
                transport.write(b"421 4.7.0 Too many connections, try again later\r\n")  # type: ignore[attr-defined]
                transport.close()
                return
            self._admitted = True
            self._deadline = self.loop.call_later(self._session_timeout, self._session_over)
        super().connection_made(transport)  # type: ignore[misc]

    def _session_over(self) -> None:
        if self.transport is not None:
            peer = self.session.peer if self.session else None
            log.info("closing session with %s: it lasted %.0fs", peer, self._session_timeout)
            self.transport.write(b"421 4.4.2 Session too long, closing\r\n")
            self.transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        if not self._admitted:
            return  # turned away: aiosmtpd never set the session up
        self._admitted = False
        self._gate.leave()
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(error)  # type: ignore[misc]

    def eof_received(self) -> bool | None:
        if not self._admitted:
            return False
        return super().eof_received()  # type: ignore[misc, no-any-return]


class BoundedSMTP(_Bounded, SMTP):
    pass


class BoundedLMTP(_Bounded, LMTP):
    pass


def _call_limits(noops: int) -> dict[str, int]:
    """aiosmtpd counts each command per session; only those that do no work are capped
    (a sender may deliver many mails in one session)."""
    return {"NOOP": noops, "HELP": noops, "VRFY": noops, "EXPN": noops, "*": sys.maxsize}


def smtp_factory(settings: Settings, handler: IntakeHandler,
                 tls_context: object | None = None) -> Callable[[], SMTP]:
    cfg = settings.smtp
    gate = _Gate(cfg.max_connections)

    def make() -> SMTP:
        kwargs: dict[str, object] = {
            "data_size_limit": cfg.max_message_size,
            "enable_SMTPUTF8": True,
            "decode_data": False,
            "hostname": settings.helpdesk.domain,
            "ident": "helpdesk ESMTP",
            "timeout": cfg.idle_timeout,
            "command_call_limit": _call_limits(cfg.max_noops),
            "gate": gate,
            "session_timeout": cfg.session_timeout,
            # long lines are taken whole, up to the size limit (see the module docstring)
            "line_length_limit": cfg.max_message_size + 1001,
        }
        if tls_context is not None:
            kwargs["tls_context"] = tls_context
        protocol = BoundedLMTP if cfg.lmtp else BoundedSMTP
        return protocol(handler, **kwargs)  # type: ignore[arg-type]

    return make
