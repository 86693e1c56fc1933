"""Every exception the package defines is a HelpdeskError, so one `except HelpdeskError`
catches whatever helpdesk raises on purpose, and a new exception cannot be left out."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import helpdesk
from helpdesk.errors import HelpdeskError

# Left for the merge: pipeline.py belongs to another branch of this session (issue #14).
# Derive _Hold from HelpdeskError there and drop it here; until both are done the test
# below fails, so the entry cannot outlive its reason.
NOT_YET: set[str] = set()


def defined_exceptions() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(helpdesk.__path__, "helpdesk."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            # each class once, in the module that defines it, not where it is imported
            if issubclass(obj, BaseException) and obj.__module__ == info.name:
                found.append(obj)
    return found


def test_every_exception_of_the_package_is_a_helpdesk_error() -> None:
    outside = {f"{cls.__module__}.{cls.__qualname__}" for cls in defined_exceptions()
               if not issubclass(cls, HelpdeskError)}
    missing, done = sorted(outside - NOT_YET), sorted(NOT_YET - outside)
    assert not missing, f"not derived from helpdesk.errors.HelpdeskError: {missing}"
    assert not done, f"a HelpdeskError now, remove it from NOT_YET: {done}"


def test_the_walk_sees_the_package_s_exceptions() -> None:
    # guards the walk itself: a walk that imported nothing would pass the test above
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in defined_exceptions()}
    for name in ("helpdesk.errors.ConfigError", "helpdesk.ingest.imap_connect.ImapFault",
                 "helpdesk.outgoing.compose.TemplateNotFound",
                 "helpdesk.store.migrate.MigrationRefused",
                 "helpdesk.hours.HoursError", "helpdesk.rules.matchers.SpecError"):
        assert name in names


def test_errors_still_caught_as_value_error_keep_that_base() -> None:
    from helpdesk.hours import HoursError
    from helpdesk.rules.matchers import SpecError, SpecErrors

    for cls in (HoursError, SpecError, SpecErrors):
        assert issubclass(cls, ValueError), cls
