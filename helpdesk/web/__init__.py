"""The web stage: one starlette app on the daemon's public listener; routes validate then
call the same functions as the mail path.

May import the base (config, clock, errors), the store, the agents directory and the
outgoing mail helpers (mailout); nothing imports it but the daemon and the CLI.

- app.py: the app for [http] public: the survey pages and, under /desk, the agent desk.
- auth.py: who is signed in (`current`, `require`, `signed_in`) and the sign-in routes.
- sessions.py: server-side sessions behind a signed cookie; revocable, per browser.
- csrf.py: a token on every form, checked on every POST before a route runs.
- signin.py: magic links, passwords (argon2id) and the sign-in rate limit, in the DB.
- pages.py: jinja2 templates under templates/web/ (autoescaped), security headers.
- desk.py: the desk's pages (for now the landing page).
"""
