"""The JSON API under /api/v1 on the public listener ([api] enabled; docs/api.md).

A door like mail, the desk and the CLI: routes validate their input (pydantic models,
schemas.py), then call what the other doors call: store/queries.py and store/search.py
to read, agents.actions.run_commands (the #command registry) to change a ticket, the
spool and the pipeline to create one. Who may see what is web/access.py's rule, applied
to the agent a token belongs to (tokens.py, auth.py).

Modules: tokens (the token table's operations, shared with `helpdesk api token`),
auth (bearer tokens, scopes, rate limits), schemas (request and response bodies),
routes (the operations and the route table), openapi (the document, built from the
route table and the schemas, so it cannot drift), app (the mounted starlette app).
"""
