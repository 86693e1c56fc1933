"""Everything the helpdesk keeps about one customer, in one zip file: what a person asking
for their data (GDPR article 15) is given, or what a customer leaving takes along.

    customer.json   the contact, the VIP flag, every ticket they are the customer of
                    (its fields, history and messages, as `tickets show --json` has
                    them), the mails they wrote on other tickets, their ratings
    mail/HD-N/M.eml the original of each mail they sent, byte for byte

Internal notes and agents' mails held for review are the staff's, not the customer's:
left out unless asked for (`internal`). Read in one snapshot, so the file is one moment.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.report.present import CUSTOMER_SIDE, iso, ticket_detail
from helpdesk.store import blobs, contacts_ops, queries
from helpdesk.store.models import Message, Survey, Ticket


@dataclass(frozen=True)
class Exported:
    tickets: int
    messages: int
    originals: int
    missing: list[str]  # originals that could not be read, and why


def _customer_side(message: dict[str, Any], internal: bool) -> bool:
    """What the customer wrote or was sent; with `internal`, the staff's side too."""
    return internal or message["visibility"] in CUSTOMER_SIDE


def export(session: Session, settings: Settings, address: str, out: Path,
           internal: bool = False) -> Exported:
    """Write the zip to `out` (replaced if there); LookupError when the helpdesk has
    nothing of `address`."""
    address = address.strip().lower()
    contact = queries.contact_by_email(session, address)
    elsewhere_rows = session.exec(
        select(Message).where(func.lower(Message.from_addr) == address,
                              col(Message.internal).is_(False))
        .order_by(col(Message.id))).all()
    if contact is None and not elsewhere_rows:
        raise LookupError(f"the helpdesk has nothing of {address}")
    prefix = settings.helpdesk.ticket_prefix
    tickets = list(session.exec(select(Ticket).where(Ticket.contact_id == contact.id)
                                .order_by(col(Ticket.id))).all()) if contact else []
    own = {t.id for t in tickets}
    details = []
    for ticket in tickets:
        data = ticket_detail(session, ticket, prefix)
        # where the helpdesk keeps an original is its own business; the original is here
        data["messages"] = [{k: v for k, v in m.items() if k != "raw_path"}
                            for m in data["messages"] if _customer_side(m, internal)]
        if not internal:
            data.pop("watchers", None)  # the staff's own arrangement
        details.append(data)
    elsewhere = [{"ticket": f"{prefix}-{m.ticket_id}", "number": m.id,
                  "message_id": m.message_id, "subject": m.subject, "to": list(m.to),
                  "cc": list(m.cc), "body_text": m.body_text, "created": iso(m.created_at)}
                 for m in elsewhere_rows if m.ticket_id not in own]
    surveys = session.exec(select(Survey).where(Survey.contact == address)
                           .order_by(col(Survey.id))).all()
    document = {
        "address": address,
        "name": contact.name if contact else "",
        "known_since": iso(contact.created_at) if contact else None,
        "vip": contacts_ops.is_vip(session, address),
        "exported": iso(clock.now()),
        "internal_notes_included": internal,
        "tickets": details,
        "mails_on_other_tickets": elsewhere,
        "ratings": [{"ticket": f"{prefix}-{s.ticket_id}", "score": s.score, "good": s.good,
                     "comment": s.comment, "rated": iso(s.rated_at) if s.rated_at else None}
                    for s in surveys],
    }
    # the originals of the mails they wrote, on their tickets and elsewhere (each once)
    sent_by_them = {m.id: m for m in elsewhere_rows if m.direction == "in"}
    store = blobs.for_session(session, settings.data_dir)
    missing: list[str] = []
    originals = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("customer.json", json.dumps(document, indent=2, ensure_ascii=False))
        for m in sorted(sent_by_them.values(), key=lambda m: m.id or 0):
            if not m.raw_path:
                continue
            try:
                raw = store.read(m.raw_path)
            except Exception as err:  # a lost file is reported, the rest still exported
                missing.append(f"{prefix}-{m.ticket_id} #{m.id}: {type(err).__name__}: {err}")
                continue
            archive.writestr(f"mail/{prefix}-{m.ticket_id}/{m.id}.eml", raw)
            originals += 1
    partial.replace(out)  # a reader never finds half a file under the name asked for
    return Exported(len(details), sum(len(d["messages"]) for d in details) + len(elsewhere),
                    originals, missing)
