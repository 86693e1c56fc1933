"""The error kinds every stage raises; the pipeline decides what each one means."""


class HelpdeskError(Exception):
    """Base of all errors raised on purpose by helpdesk."""


class ConfigError(HelpdeskError):
    """A configuration file is invalid: the message names the file, key and problem."""


class TemporaryError(HelpdeskError):
    """Try again later: database or relay unavailable, disk full. Mail must be kept."""


class SchemaTooNew(TemporaryError):
    """A newer helpdesk (on another machine) migrated the database past what this version
    knows. Nothing here can migrate it back: this machine's helpdesk needs upgrading.
    Temporary in that sense: commands that write refuse and mail waits, as for a database
    that is away; the daemon runs on the newer schema (migrations within a minor version
    only add, docs/operations.md) and says so."""


class PermanentError(HelpdeskError):
    """Retrying cannot help: the mail or request itself is unacceptable."""


class ParseError(PermanentError):
    """The bytes cannot be understood as a mail at all; they go to quarantine."""


class RuleError(HelpdeskError):
    """A rules file is invalid: the message names the file, rule and field."""


class ListenerError(HelpdeskError):
    """A listening socket cannot be bound: one line naming the listener, the address and,
    where it can be told, what holds it."""


class DuplicateCommandError(HelpdeskError):
    """Two agents' #commands registered under one name or alias: a start-up error, never
    a silent replacement of one by the other."""
