"""The desk's pages. For now the landing page: who is signed in, and the sign-out forms."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from helpdesk.web import auth, pages


@auth.signed_in()
async def home(request: Request, who: auth.SignedIn) -> Response:
    return pages.page(request, "desk", {"agent": who.agent, "role": who.role})


ROUTES = [Route("/", home, methods=["GET"])]
