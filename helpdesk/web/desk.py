"""The desk's pages. The landing page is the agent's own tickets (web/queues.py), which
also says who is signed in and has the sign-out forms."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from helpdesk.web import auth, queues


@auth.signed_in()
async def home(request: Request, who: auth.SignedIn) -> Response:
    return await queues.home(request, who)


ROUTES = [Route("/", home, methods=["GET"])]
