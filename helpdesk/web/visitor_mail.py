"""The mail a person on the web sends us: the status page's reply (portal/reply.py) and
the public form's request (portal/form_mail.py) each become an RFC 5322 message From
that person, built here by the email package, then spool.put like the SMTP listener's
mail, so the pipeline treats them as mail. (A request an agent or the API makes on a
customer's behalf is built by agents/new_ticket.request_mail.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from helpdesk.outgoing import compose as mailout


def build(*, name: str, address: str, to: str | Address, subject: str, text: str,
          date: datetime, message_id: str, headers: Mapping[str, str] = {},
          attachments: Iterable[tuple[str, str, bytes]] = ()) -> EmailMessage:
    """The message; `headers` are added in order (In-Reply-To, a route note); each
    attachment is (filename, content type, bytes)."""
    msg = EmailMessage(policy=mailout.POLICY)
    msg["From"] = Address(name, addr_spec=address)
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    for field, value in headers.items():
        msg[field] = value
    msg.set_content(text.replace("\r\n", "\n"))
    for filename, content_type, data in attachments:
        main, _, sub = content_type.partition("/")
        msg.add_attachment(data, maintype=main, subtype=sub or "octet-stream",
                           filename=filename)
    return msg
