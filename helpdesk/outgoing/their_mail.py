"""Mail we write for a person, which enters the pipeline as theirs: the status page's
reply and the public form's request (web/portal/), a request an agent or the API makes
for a customer and an agent's internal ticket (agents/new_ticket.py). Each is an RFC
5322 message From that person, built here by the email package and put in the spool
like the SMTP listener's mail, so the pipeline treats it as mail.

The same arguments give the same bytes (the MIME boundary is derived from the
Message-ID, not random), so a request made twice is one mail to the store's dedupe.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from helpdesk import clock
from helpdesk.outgoing import compose


def build(*, name: str, address: str, to: str | Address, subject: str, text: str,
          message_id: str, date: datetime | None = None,
          headers: Mapping[str, str] = {},
          attachments: Iterable[tuple[str, str, bytes]] = ()) -> bytes:
    """The mail's bytes as they would come over SMTP. `headers` are added in order
    (In-Reply-To, a note of which door made it); each attachment is (filename, content
    type, bytes)."""
    msg = EmailMessage(policy=compose.BUILD_POLICY)
    msg["From"] = Address(name, addr_spec=address)
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or clock.now())
    msg["Message-ID"] = message_id
    for field, value in headers.items():
        msg[field] = value
    msg.set_content(text.replace("\r\n", "\n"))
    for filename, content_type, data in attachments:
        main, _, sub = content_type.partition("/")
        msg.add_attachment(data, maintype=main or "application", subtype=sub or "octet-stream",
                           filename=filename)
    if msg.is_multipart():
        msg.set_boundary("=_hd" + hashlib.sha256(message_id.encode()).hexdigest()[:32])
    return compose.wire_bytes(msg)
