"""schema/execution.py's leaf-field shortcut answers exactly as graphql-core's standard path."""

from __future__ import annotations

import enum
from typing import Any

import pytest
import strawberry

from schema.execution import ExecutionContext


@strawberry.enum
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Thing:
    name: str
    nick: str | None
    color: Color
    count: int
    tags: list[str]

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.name.upper() * times


def _things() -> list[Thing]:
    return [
        Thing(name="a", nick=None, color=Color.RED, count=1, tags=["x"]),
        # Broken on purpose: null in a non-null field, bad enum value, bad int.
        Thing(name=None, nick="n", color=Color.BLUE, count=2, tags=[]),  # type: ignore[arg-type]
        Thing(name="c", nick=None, color="green", count="many", tags=["y"]),  # type: ignore[arg-type]
    ]


@strawberry.type
class Query:
    @strawberry.field
    def things(self) -> list[Thing]:
        return _things()

    @strawberry.field
    def nullable_things(self) -> list[Thing | None]:
        return list(_things())


def _schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    return strawberry.Schema(query=Query), strawberry.Schema(
        query=Query, execution_context_class=ExecutionContext
    )


def _outcome(result: Any) -> tuple[Any, list[tuple[str, Any]]]:
    errors = [(error.message, error.path) for error in result.errors or []]
    return result.data, sorted(errors, key=repr)


QUERIES = [
    "{ nullableThings { name nick color count tags shout(times: 2) } }",
    "{ nullableThings { n: name nickname: nick c: color } }",
    "{ things { name } }",
    "{ nullableThings { count } }",
    "{ nullableThings { __typename name @include(if: false) nick @skip(if: true) color } }",
    "query($yes: Boolean!) { nullableThings { ...F } } fragment F on Thing { name @include(if: $yes) count }",
]


@pytest.mark.parametrize("query", QUERIES)
def test_shortcut_gives_the_same_data_and_errors(query: str) -> None:
    standard, shortcut = _schemas()
    variables = {"yes": True}
    expected = _outcome(standard.execute_sync(query, variable_values=variables))
    assert _outcome(shortcut.execute_sync(query, variable_values=variables)) == expected


async def test_shortcut_gives_the_same_answer_when_executed_async() -> None:
    standard, shortcut = _schemas()
    query = QUERIES[0]
    assert _outcome(await shortcut.execute(query)) == _outcome(await standard.execute(query))
