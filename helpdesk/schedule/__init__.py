"""The scheduler stage: the APScheduler service (service), the pass over due tickets
(sweep), what a pass works with (runtime), SLA clocks (sla), escalation and stale
tickets.

May import: the base, mail, rules, store, outgoing; sweep also runs the survey's step
(survey builds on runtime, so the two packages know each other).
"""
