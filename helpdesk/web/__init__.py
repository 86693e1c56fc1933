"""The web stage: the daemon's HTTP listeners (server), the ops endpoints (health,
metrics) and one starlette app on the public listener: the agent desk under /desk and
the customers' status pages under /portal. Routes validate, then call the same
functions the mail path calls.

May import: every stage before it (base, store, agents, outgoing, schedule, survey,
report); nothing imports web but the daemon, survey's page and the CLI.

- server.py: uvicorn on a socket we bind; one host for every listener.
- health.py, metrics.py: /healthz and /metrics on the ops listener.
- app.py: the public listener's routes: the survey pages and, under /desk, the desk.
- auth.py: who is signed in (`current`, `require`, `signed_in`) and the sign-in routes.
- sessions.py: server-side sessions behind a signed cookie; revocable, per browser.
- csrf.py: a token on every form, checked on every POST before a route runs.
- signin.py: magic links, passwords (argon2id) and the sign-in rate limit, in the DB.
- pages.py: jinja2 templates under templates/web/ (autoescaped), security headers.
- desk.py: the desk's pages.
- queues.py: the queue views with their counts, bulk assign/close, a customer's page.
- portal/: the customers' status pages under /portal, by signed links ([portal]).
"""
