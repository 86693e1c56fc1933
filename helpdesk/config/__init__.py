"""Configuration: the one schema of helpdesk.toml (settings), the scheduler's
settings (schedule), the agents directory (agents), the shared schema pieces (base),
the priorities (priority) and the generated reference (docgen).

Part of the base every stage may import; imports only errors, clock and hours.
"""
