"""A request typed into the public form (form.py) as the visitor's mail: an RFC 5322
message From the visitor To the helpdesk, with the envelope of rules/channel.py, that
enters the spool exactly as mail from the SMTP listener does (portal/reply.py
`put`), so threading, dedupe, rules and the acknowledgement are the pipeline's.

One request is one mail, however often it is sent: the form carries a token signed
when the page was drawn (a nonce and the time), and the Message-ID, Date and MIME
boundary come from it, so the same form posted twice is the same bytes and the
pipeline's dedupe (Message-ID and content hash) stores one.

Between the "next" step's suggested articles and the visitor's answer the mail waits,
fsynced, in data_dir/web_form/ under a name made from the nonce (a second post of the
same form overwrites it): "send" moves it into the spool, "this solved it" deletes it.
Held mail nobody answered is removed after a day. A form drawn afresh (the back
button reloaded the page) and sent with the same words and files by the same address
within that day takes the first post's token (`first_token`), so it is the same mail.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from helpdesk import clock
from helpdesk.config.settings import Settings
from helpdesk.durable import write_atomic
from helpdesk.outgoing import their_mail
from helpdesk.rules import channel as web_channel
from helpdesk.spool import Envelope

SALT = "helpdesk.portal.new"
HELD_FOR = 86400  # seconds a held request waits for the visitor's answer


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Request:
    """What the visitor typed, checked (form.py `read`)."""

    name: str
    address: str
    subject: str
    text: str
    category: str = ""
    priority: str = ""
    uploads: tuple[Upload, ...] = ()


@dataclass(frozen=True)
class FormToken:
    nonce: str
    at: int  # when the page was drawn (epoch seconds): the mail's Date

    @property
    def key(self) -> str:
        return hashlib.sha256(f"web\0{self.nonce}".encode()).hexdigest()[:32]


def _serializer(settings: Settings) -> URLSafeSerializer:
    return URLSafeSerializer(settings.secret, salt=SALT)


def new_token(settings: Settings) -> str:
    data = {"n": secrets.token_urlsafe(16), "d": int(clock.now().timestamp())}
    return str(_serializer(settings).dumps(data))


def read_token(settings: Settings, value: str) -> FormToken | None:
    if not value or len(value) > 400:
        return None
    try:
        data: Any = _serializer(settings).loads(value)
    except BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    nonce, at = data.get("n"), data.get("d")
    if not (isinstance(nonce, str) and isinstance(at, int)):
        return None
    return FormToken(nonce, at)


def compose(settings: Settings, asked: Request, form: FormToken) -> tuple[bytes, Envelope]:
    """The visitor's mail and its envelope, the same bytes for the same form."""
    hd = settings.helpdesk
    raw = their_mail.build(
        name=asked.name, address=asked.address, to=Address(hd.name, addr_spec=hd.address),
        subject=asked.subject, text=asked.text, date=datetime.fromtimestamp(form.at, UTC),
        message_id=f"<web.{form.key}@portal.{hd.domain}>",
        # for a reader of the raw mail; the pipeline believes the envelope, not this
        headers={"X-Helpdesk-Route": "web form"},
        attachments=[(u.filename, u.content_type, u.data) for u in asked.uploads])
    envelope = web_channel.envelope(asked.address, hd.address, asked.category,
                                    asked.priority)
    return raw, envelope


def first_token(settings: Settings, asked: Request, given: str) -> str:
    """The form token of the first post of this very request (the same address, words,
    choices and files) within a day, else `given`, which is then remembered: a form
    drawn afresh (the back button reloaded it) and sent again is still one mail."""
    digest = hashlib.sha256()
    for part in (asked.address, asked.subject, asked.text, asked.category, asked.priority,
                 *(f"{u.filename}\0{hashlib.sha256(u.data).hexdigest()}"
                   for u in asked.uploads)):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    marker = _held_dir(settings) / f"{digest.hexdigest()[:32]}.same"
    try:
        earlier = marker.read_text()
        if time.time() - marker.stat().st_mtime < HELD_FOR and read_token(settings, earlier):
            return earlier
    except FileNotFoundError:
        pass
    write_atomic(marker, given.encode())
    return given


# -- held while the visitor reads the suggested articles ------------------------------

def _held_dir(settings: Settings) -> Path:
    path = settings.data_dir / "web_form"
    path.mkdir(parents=True, exist_ok=True)
    return path


def hold(settings: Settings, key: str, raw: bytes, envelope: Envelope,
         offered: list[int]) -> None:
    head = {"envelope": envelope.to_dict(), "offered": offered}
    folder = _held_dir(settings)
    write_atomic(folder / f"{key}.mail", json.dumps(head).encode() + b"\n" + raw)
    _sweep(folder)


def take(settings: Settings, key: str) -> tuple[bytes, Envelope, list[int]] | None:
    """The held mail (its file removed only by `drop`), or None when there is none."""
    try:
        data = (_held_dir(settings) / f"{key}.mail").read_bytes()
    except FileNotFoundError:
        return None
    line, _, raw = data.partition(b"\n")
    head = json.loads(line)
    return raw, Envelope.from_dict(head["envelope"]), [int(i) for i in head["offered"]]


def drop(settings: Settings, key: str) -> bool:
    """Remove the held mail; False when someone else already did (a second press)."""
    try:
        (_held_dir(settings) / f"{key}.mail").unlink()
    except FileNotFoundError:
        return False
    return True


def mark_sent(settings: Settings, key: str) -> None:
    """After spool.put: the held mail becomes a marker that it went (a second "send"
    then says received, not "waited too long")."""
    folder = _held_dir(settings)
    with contextlib.suppress(FileNotFoundError):
        (folder / f"{key}.mail").replace(folder / f"{key}.sent")


def was_sent(settings: Settings, key: str) -> bool:
    return (_held_dir(settings) / f"{key}.sent").exists()


def _sweep(folder: Path) -> None:
    cutoff = time.time() - HELD_FOR
    for path in [*folder.glob("*.mail"), *folder.glob("*.sent"), *folder.glob("*.same")]:
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
