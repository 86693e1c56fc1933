"""The desk's own static files (helpdesk/web/static.py): every page, the sign-in page
too, links our stylesheet; /desk/static/{name} serves only its allow-list, with the
right type and nosniff, and the CSP lets that stylesheet apply (style-src 'self')."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from helpdesk.web import pages, static
from tests.web_helpers import Desk, sign_in

REPO = Path(__file__).resolve().parent.parent
LINK = '<link rel="stylesheet" href="/desk/static/desk.css">'


def test_every_page_links_the_stylesheet_that_the_desk_serves(
        make_desk: Callable[..., Desk]) -> None:
    desk = make_desk()
    anonymous = desk.client()
    signin = anonymous.get("/desk/login")
    assert signin.status_code == 200 and LINK in signin.text
    # the pages' policy lets our own stylesheet apply, and no inline style
    csp = signin.headers["content-security-policy"]
    assert "style-src 'self'" in csp and "unsafe-inline" not in csp
    assert "style=" not in signin.text

    # served before signing in (the sign-in page needs it), as CSS, never sniffed
    css = anonymous.get("/desk/static/desk.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert css.headers["x-content-type-options"] == "nosniff"
    assert css.text == (REPO / "templates/web/static/desk.css").read_text()
    assert ".desk-bar" in css.text and "prefers-color-scheme: dark" in css.text

    agent = sign_in(desk, "alice")
    queue = agent.get("/desk/", follow_redirects=True)
    assert queue.status_code == 200 and LINK in queue.text
    assert 'class="desk-bar"' in queue.text and 'class="tabs"' in queue.text
    assert "style=" not in queue.text

    # the ticket page's script keeps its address, from the same route
    script = anonymous.get("/desk/static/ticket_actions.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.text == (REPO / "templates/web/ticket_actions.js").read_text()


def test_only_the_allow_list_is_served(make_desk: Callable[..., Desk]) -> None:
    desk = make_desk()
    client = desk.client()
    for name in ("base.html.j2", "login_link.txt.j2", "ticket.css.j2", "desk.cs",
                 "..%2Fbase.html.j2", "static%2Fdesk.css", "DESK.CSS"):
        answer = client.get(f"/desk/static/{name}")
        assert answer.status_code == 404, name
        assert "{%" not in answer.text and "{{" not in answer.text, name  # no source
    assert set(static.ALLOWED) == {"desk.css", "ticket.css", "ticket_actions.js"}
    # every allowed file exists where the loader looks
    env = pages.environment(desk.settings)
    for path, _ in static.ALLOWED.values():
        assert env.loader is not None and env.loader.get_source(env, path)[0]
