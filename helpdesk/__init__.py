"""helpdesk: an email-to-ticket helpdesk daemon."""

__version__ = "0.1.0"
