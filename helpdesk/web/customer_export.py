"""GET /desk/customer/N/export (admins): the customer's data as `helpdesk contacts export`
writes it (report/contact_export.py), as a download: for a data access request answered
from the desk. Internal notes are left out, as the CLI leaves them out by default."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from helpdesk.report.contact_export import export
from helpdesk.store.db import snapshot_scope
from helpdesk.store.models import Contact
from helpdesk.web import auth


@auth.signed_in("admin")
async def download(request: Request, who: auth.SignedIn) -> Response:
    web = auth.ctx(request)
    fd, name = tempfile.mkstemp(prefix="helpdesk-export-", suffix=".zip")
    os.close(fd)
    path = Path(name)

    def work() -> str | None:
        with snapshot_scope(web.engine) as session:
            contact = session.get(Contact, int(request.path_params["number"]))
            if contact is None:
                return None
            try:
                export(session, web.settings, contact.email, path)
            except LookupError:
                return None
            return contact.email

    try:
        address = await run_in_threadpool(work)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if address is None:
        path.unlink(missing_ok=True)
        raise HTTPException(404)
    # the address is the file's name; quotes and the like are left to Starlette's encoding
    return FileResponse(path, media_type="application/zip",
                        filename=f"{address.replace('@', '-at-')}.zip",
                        background=BackgroundTask(path.unlink, missing_ok=True))


ROUTES = [Route("/customer/{number:int}/export", download, methods=["GET"])]
