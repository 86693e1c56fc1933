"""Rows the pipeline writes on every mail, as plain inserts with the model's own defaults.

Adding an ORM object costs its construction and a flush (unit of work, dependency
sort, attribute events), several times the INSERT it sends. `insert` writes a row at
once on the session's connection (so in its transaction and savepoint), every column
given: the values asked for, and for the rest the model's default or default factory,
read from the model itself so that a default is defined once. A caller that goes on to
change the row through the ORM gets it back as a persistent object with `attach`
(no SELECT, no second INSERT: the session tracks later changes as an UPDATE).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from pydantic_core import PydanticUndefined
from sqlalchemy import Insert
from sqlalchemy import insert as sa_insert
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state
from sqlmodel import Session, SQLModel

M = TypeVar("M", bound=SQLModel)

_REQUIRED = object()


@cache
def _columns(model: type[SQLModel]) -> tuple[tuple[str, Any, Callable[[], Any] | None], ...]:
    """(name, default, factory) of each column but the generated primary key."""
    columns = []
    for name, field in model.model_fields.items():
        if name == "id":
            continue
        factory = field.default_factory
        default = _REQUIRED if field.default is PydanticUndefined else field.default
        columns.append((name, default, factory))
    return tuple(columns)


@cache
def _statement(model: type[SQLModel]) -> Insert:
    return sa_insert(model.__table__)  # type: ignore[attr-defined]  # built once: cached


def values(model: type[SQLModel], **given: Any) -> dict[str, Any]:
    """Every column of a new `model` row: `given`, and the model's defaults for the rest."""
    row: dict[str, Any] = {}
    for name, default, factory in _columns(model):
        if name in given:
            row[name] = given.pop(name)
        elif factory is not None:
            row[name] = factory()
        elif default is _REQUIRED:
            raise TypeError(f"{model.__name__}.{name} has no default: give it")
        else:
            row[name] = default
    if given:
        raise TypeError(f"{model.__name__} has no column {', '.join(sorted(given))}")
    return row


def insert(session: Session, model: type[SQLModel], row: dict[str, Any]) -> int:
    """Write `row` (from `values`) now; its new id."""
    result = session.connection().execute(_statement(model), row)
    return int(result.inserted_primary_key[0])


def insert_many(session: Session, model: type[SQLModel], rows: list[dict[str, Any]]) -> None:
    """Write several rows (from `values`) now, in one statement."""
    session.connection().execute(_statement(model), rows)


def attach(session: Session, model: type[M], row_id: int, row: dict[str, Any]) -> M:
    """The row just inserted as an object the session holds as persistent."""
    # An object the session still holds under this id is a row a rolled-back savepoint
    # took out (SQLite gives its id to the next insert): the database has no such row,
    # or the insert would have failed. The ORM forgets the objects it inserted itself
    # on rollback, not one attached here, so the stale one goes now.
    stale = session.identity_map.get(session.identity_key(model, row_id))
    if stale is not None:
        session.expunge(stale)
    # made as a query's result is (the mapper's new instance, its attributes set), not
    # by the model's __init__, which validates and costs thirty times as much
    obj = sa_inspect(model).class_manager.new_instance()
    instance_state(obj).dict.update(row, id=row_id)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj
