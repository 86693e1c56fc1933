"""Where the files go in the wheel; the rest of the packaging is in pyproject.toml.

Here, not in pyproject.toml, because pyproject.toml cannot add a directory from outside
the package to an automatically found package list: the top-level templates/ ships
inside the package as helpdesk/templates, where an installed daemon looks for it
(helpdesk/outgoing/compose.py). One copy in git feeds both the checkout and the wheel.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        # namespace: helpdesk/migrations/ has no __init__.py (alembic reads it by path)
        *find_namespace_packages(include=["helpdesk", "helpdesk.*"], exclude=["*.__pycache__"]),
        # templates/ and every folder below it (web/, web/static/, ...): each must be
        # named, or setuptools warns that package data sits outside any package
        "helpdesk.templates",
        *(f"helpdesk.templates.{name}"
          for name in find_namespace_packages(where="templates", exclude=["*.__pycache__"])),
    ],
    package_dir={"helpdesk.templates": "templates"},
    package_data={"helpdesk.migrations": ["*.mako"], "helpdesk.templates": ["**/*"]},
)
