"""Files and text people send through our forms: the desk's reply and new-ticket forms
(web/actions.py, web/new_ticket.py) and the public request form (web/portal/form_read.py).

A browser's file name is the uploader's to choose: only its last path part is kept,
without control characters, at most 255 characters. A content type is kept only when it
looks like one (type/subtype), else the file is application/octet-stream; what a file
is, is decided again wherever it is shown (never inline as HTML).
"""

from __future__ import annotations

import re

from starlette.datastructures import FormData, UploadFile

from helpdesk.mail.mimeparts import Attachment

CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,99}/[a-z0-9][a-z0-9!#$&^_.+-]{0,99}")
_NAME_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


async def read_file(item: UploadFile) -> Attachment | None:
    """The uploaded file, None for a file input left empty."""
    data = await item.read()
    if not item.filename and not data:
        return None
    name = _NAME_CONTROLS.sub("", re.split(r"[/\\]", item.filename or "")[-1])[:255]
    ctype = (item.content_type or "").split(";")[0].strip().lower()
    return Attachment(name or "attachment",
                      ctype if CONTENT_TYPE.fullmatch(ctype) else "application/octet-stream",
                      data)


async def files(form: FormData, field: str = "attachments") -> tuple[Attachment, ...]:
    found = [await read_file(item) for item in form.getlist(field) if isinstance(item, UploadFile)]
    return tuple(a for a in found if a is not None)


def text(form: FormData, name: str) -> str:
    """A text field, CRLF made LF and stripped; "" when missing or a file."""
    value = form.get(name, "")
    return value.replace("\r\n", "\n").strip() if isinstance(value, str) else ""
