"""ParsedMail -> which ticket it belongs to, and why; and who is on a ticket's conversation.

Order of trust (docs/security.md): a signed reply address, then In-Reply-To, then
References, then the subject tag. Our own Message-IDs and signed reply addresses
prove the sender received our mail. A customer's Message-ID proves nothing (it is in
every copy, archive and list), so it threads a mail as a reply only from someone
already on the conversation; anyone else's mail is kept on the ticket for the agents
(`trusted` False) but reopens nothing and adds nobody. The subject tag alone is
trusted only from someone on the conversation; anyone else who types a ticket number
gets a new ticket that links the old one, so strangers cannot write into other
people's tickets.

Who is on the conversation is decided here, once: the people the customer brought,
never the helpdesk's own addresses (config.Settings.is_own_address).
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from dataclasses import dataclass, replace

from sqlmodel import Session

from helpdesk.config.settings import Settings
from helpdesk.mail.parse import ParsedMail
from helpdesk.mail.tokens import ReplyTarget, find_reply_target
from helpdesk.spool import Envelope
from helpdesk.store import queries, ticket_ops
from helpdesk.store.models import Message, msgid_key

log = logging.getLogger("helpdesk.thread")


@dataclass(frozen=True)
class ThreadResult:
    ticket_id: int | None
    reason: str
    linked_ticket_id: int | None = None
    reply_target: ReplyTarget | None = None
    # False: found only by a customer's Message-ID, from someone not on the conversation
    trusted: bool = True

    @property
    def is_new(self) -> bool:
        return self.ticket_id is None


def subject_tag(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"\[{re.escape(prefix)}-(\d+)\]", re.IGNORECASE)


def resolve(session: Session, mail: ParsedMail, envelope: Envelope,
            settings: Settings, owners: queries.MessageIdOwners | None = None) -> ThreadResult:
    """The ticket the mail belongs to; one merged into another is a pointer to it, so
    mail for it lands on the survivor (store.ticket_ops.survivor), saying so. `owners`:
    the mail's In-Reply-To and References looked up already (queries.message_id_owners)."""
    found = _resolve(session, mail, envelope, settings, owners)
    for attr in ("ticket_id", "linked_ticket_id"):
        number = getattr(found, attr)
        survivor = ticket_ops.survivor(session, number) if number is not None else None
        if survivor is not None and survivor != number:
            prefix = settings.helpdesk.ticket_prefix
            found = replace(found, **{attr: survivor},
                            reason=f"{found.reason}; {prefix}-{number} was merged into "
                                   f"{prefix}-{survivor}")
    return found


def _resolve(session: Session, mail: ParsedMail, envelope: Envelope,
             settings: Settings, owners: queries.MessageIdOwners | None) -> ThreadResult:
    hd = settings.helpdesk
    candidates = [*envelope.rcpt_tos, *mail.delivered_to, *mail.to, *mail.cc]
    target, note = find_reply_target(candidates, hd.local_part, hd.ticket_prefix,
                                     settings.secret)
    if target and queries.ticket(session, target.ticket):
        return ThreadResult(target.ticket, f"reply address {target.address}", None, target)
    found = _by_message_ids(session, settings, mail, owners)
    if found is not None:
        return found
    bounced = _bounced_message_id(mail)
    if bounced:
        number = queries.ticket_for_message_id(session, bounced)
        if number is not None:
            return ThreadResult(number, f"bounce of <{bounced}>")
    m = subject_tag(hd.ticket_prefix).search(mail.subject)
    if m:
        number = int(m.group(1))
        tag = f"[{hd.ticket_prefix}-{number}]"
        if queries.ticket(session, number) is not None:
            if mail.from_addr in participants(session, settings, number):
                return ThreadResult(number, f"subject tag {tag}")
            return ThreadResult(None, f"new: subject tag {tag} from a non-participant", number)
    return ThreadResult(None, "new" + (f" ({note})" if note else ""))


def _by_message_ids(session: Session, settings: Settings, mail: ParsedMail,
                    owners: queries.MessageIdOwners | None) -> ThreadResult | None:
    """The ticket the mail answers by In-Reply-To or References: one of our own
    Message-IDs first (whoever holds it got our mail), else a stored customer mail's,
    which only someone on the conversation may thread by."""
    named = [("In-Reply-To", mid) for mid in mail.in_reply_to]
    named += [("References", mid) for mid in reversed(mail.references)]
    if owners is None:
        owners = queries.message_id_owners(session, [mid for _, mid in named])
    for header, mid in named:
        number = owners.we_sent(mid)
        if number is not None:
            return ThreadResult(number, f"{header} <{mid}>")
    for header, mid in named:
        number = owners.ticket_for(mid)
        if number is None:
            continue
        if mail.from_addr in participants(session, settings, number):
            return ThreadResult(number, f"{header} <{mid}>")
        return ThreadResult(number, f"{header} <{mid}> from a non-participant", trusted=False)
    return None


def participants(session: Session, settings: Settings, ticket_id: int) -> set[str]:
    """The people on a ticket's conversation, lower-cased: the customer, the senders of
    its customer-side mail, everyone we sent to, and the To and Cc of the mails that
    may bring people (see `brings_people`). Never one of the helpdesk's own addresses."""
    customer, ours = queries.customer_and_ours(session, ticket_id)
    found = set(customer)
    # addresses and headers only: the conversation's text is not read here
    messages = queries.conversation_heads(session, ticket_id)
    for position, message in enumerate(messages):
        found.add(message.from_addr)
        if message.direction == "out" or brings_people(settings, message, ours,
                                                       first=position == 0):
            found.update(message.to)
            found.update(message.cc)
    return {a.lower() for a in found if a and not settings.is_own_address(a)}


def brings_people(settings: Settings, message: Message | queries.Heard, ours: set[str], *,
                  first: bool) -> bool:
    """Whether this customer-side mail's To and Cc join the conversation: the mail that
    opened the ticket, or a reply proven to answer our mail (one of our Message-IDs in
    In-Reply-To/References, or a signed reply address of the ticket among its
    recipients). A subject tag or a customer's Message-ID proves nothing: From is
    anyone's to write, so such a mail may keep people on copy but never add any."""
    if first:
        return True
    if any(msgid_key(mid) in ours for mid in (*message.in_reply_to.split(),
                                               *message.references.split())):
        return True
    hd = settings.helpdesk
    target, _ = find_reply_target([*message.to, *message.cc], hd.local_part,
                                  hd.ticket_prefix, settings.secret)
    return target is not None and target.ticket == message.ticket_id


def _bounced_message_id(mail: ParsedMail) -> str:
    """The Message-ID of our mail that a delivery status notification returns."""
    for att in mail.attachments:
        if att.content_type in ("message/rfc822", "text/rfc822-headers", "message/global"):
            try:
                inner = email.message_from_bytes(att.data, policy=email.policy.compat32)
                mid = str(inner.get("Message-ID", "") or "").strip()
            except Exception as err:  # a damaged part: the next one may still name it
                log.warning("message <%s>: returned %s part unreadable (%s: %s); looking "
                            "at the next one", mail.message_id, att.content_type,
                            type(err).__name__, err)
                continue
            if mid:
                return mid.strip("<>")
    return ""
