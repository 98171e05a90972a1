"""SQL expressions the ORM does not spell the way we want on every backend."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ARRAY, String, bindparam, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import coercions, roles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean


class OneOf(ColumnElement[bool]):
    """`column` is one of the list bound as `name`: `column = ANY($1)` on PostgreSQL (one
    parameter, one prepared statement whatever the list's length), an expanding
    `column IN (...)` elsewhere. Used by loaders that fetch a level by its keys."""

    inherit_cache = True
    _is_implicitly_boolean = True
    type = Boolean()
    # The statement cache key: the column and the parameter's name.
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("name", InternalTraversal.dp_string),
    ]

    def __init__(self, column: object, name: str) -> None:
        self.column = coercions.expect(roles.ExpressionElementRole, column)
        self.name = name


def one_of(column: object, name: str) -> OneOf:
    """`column` (an SQL expression or a model attribute, which SQLModel types as its value)
    is one of the list bound as `name`."""
    return OneOf(column, name)


@compiles(OneOf)
def _one_of_default(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column.in_(bindparam(element.name, expanding=True)), **kw)


@compiles(OneOf, "postgresql")
def _one_of_postgresql(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    values = compiler.process(bindparam(element.name, type_=ARRAY(element.column.type)), **kw)
    return f"{column} = ANY({values})"


def constant(value: str) -> ColumnElement[str]:
    """A string constant of our own (an enum's value) written into the statement's SQL rather
    than bound as a parameter: PostgreSQL then plans the statement knowing it, also when it
    plans it once for every execution (a generic plan, `GATEWAY_DATABASE_PLAN_CACHE_MODE`).
    Bound, a generic plan of `status != $2` estimated one subscription left of hundreds, and
    the read of subscriptions by organization scanned all of them instead of starting from
    the organizations' accounts (~2 ms instead of ~0.1 ms on the bench data)."""
    if not value.replace("_", "").isalnum():  # no quote, nothing to escape: our own words only
        raise ValueError(f"not a plain word: {value!r}")
    return literal_column(f"'{value}'", String)
