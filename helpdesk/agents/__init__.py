"""The agents stage: recognise an agent's reply, the #command registry (parse,
check, apply; one entry per command, used by mail, web, CLI and API alike) and the
notifications to agents.

May import: the base, mail, thread, rules, store, outgoing.
"""
