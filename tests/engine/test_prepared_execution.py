"""schema/engine/prepared.py's `PreparedSchema`: a prepared operation, executed without strawberry's
extension machinery, gets exactly the result, errors, codes and logs that strawberry's own
`execute` gives (the same schema with `prepared_execution` off)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from graphql.execution import executor as graphql_executor
from strawberry.extensions.query_depth_limiter import create_validator
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from schema.engine.execution import ExecutionContext
from schema.engine.prepared import PreparedOperations, PreparedSchema
from schema.engine.setup import OperationSetup
from tests.engine.test_graphql_execution import Mutation, Query

DEPTH_RULE = create_validator(4, None, None)


def _schema(**kwargs: Any) -> PreparedSchema:
    kwargs.setdefault("execution_context_class", ExecutionContext)
    return PreparedSchema(
        query=Query,
        mutation=Mutation,
        extensions=[lambda: PreparedOperations([DEPTH_RULE])],
        prepared_rules=[DEPTH_RULE],
        **kwargs,
    )


def _everything(result: Any) -> tuple[Any, ...]:
    return (
        type(result).__name__,
        result.data,
        [error.formatted for error in result.errors or []],
        result.extensions,
    )


async def _both(schema: PreparedSchema, query: str, **kwargs: Any) -> tuple[Any, Any]:
    schema.prepared_execution = True
    prepared = await schema.execute(query, **kwargs)
    # Again, now that the operation's setup and root fields are kept: the same answer.
    again = await schema.execute(query, **kwargs)
    assert _everything(again) == _everything(prepared)
    schema.prepared_execution = False
    try:
        standard = await schema.execute(query, **kwargs)
    finally:
        schema.prepared_execution = True
    return prepared, standard


REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("{ things { name count tags } }", {}),
    ('{ thing(name: "g") { name owner { name age } siblings { name } } }', {}),
    ("query($n: String!) { thing(name: $n) { name siblings { nick } } }", {"n": "a"}),
    # Field errors: a failing resolver, a null in a non-null field up to `data: null`.
    ("{ nullableThings { broken tags } }", {}),
    ("{ requiredThing { nick } }", {}),
    # Variables that do not coerce, and one missing: errors before execution.
    ("query($n: String!) { thing(name: $n) { name } }", {"n": 3}),
    ("query($n: String!) { thing(name: $n) { name } }", {}),
    # Two operations: the named one, or (no name given) the first.
    ("query A { things { name } } query B { things { count } }", {"operation_name": "B"}),
    ("query A { things { name } } query B { things { count } }", {}),
    # Not prepared (does not validate, does not parse): strawberry's own way, same answer.
    ("{ things { nope } }", {}),
    ("{ things { name }", {}),
    ("{ thing(name: 1) { name } }", {}),
    ("{ things { siblings { siblings { siblings { siblings { name } } } } } }", {}),
    # A mutation is prepared too.
    ('mutation { rename(name: "x") { name count } }', {}),
    # A variable holding a NUL: refused as a coercion error.
    ("query($n: String!) { thing(name: $n) { name } }", {"n": "a\x00b"}),
    # Root fields that directives' variables select (kept per value of those variables).
    (
        "query($y: Boolean!) { a: things @include(if: $y) { name } b: things { count } }",
        {"y": True},
    ),
    (
        "query($y: Boolean!) { a: things @include(if: $y) { name } b: things { count } }",
        {"y": False},
    ),
    (
        "query($y: Boolean!) { ...F @skip(if: $y) things { name } } fragment F on Query { things { count } }",
        {"y": False},
    ),
]


@pytest.mark.parametrize(("query", "options"), REQUESTS)
async def test_prepared_and_strawberry_execution_give_the_same_result(
    query: str, options: dict[str, Any]
) -> None:
    schema = _schema()
    variables = {k: v for k, v in options.items() if k != "operation_name"}
    prepared, standard = await _both(
        schema,
        query,
        variable_values=variables or None,
        operation_name=options.get("operation_name"),
    )
    assert _everything(prepared) == _everything(standard)


async def test_an_unexpected_resolver_error_is_masked_alike() -> None:
    prepared, standard = await _both(_schema(), "{ nullableThings { name broken } }")
    assert _everything(prepared) == _everything(standard)
    assert {error.extensions["code"] for error in prepared.errors} == {"INTERNAL_SERVER_ERROR"}


async def test_errors_are_logged_alike(caplog: pytest.LogCaptureFixture) -> None:
    schema = _schema()
    query = "{ nullableThings { broken } }"
    logged: list[list[tuple[str, str]]] = []
    for prepared in (True, False):
        schema.prepared_execution = prepared
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            await schema.execute(query)
        logged.append([(r.name, r.getMessage()) for r in caplog.records])
    assert logged[0] == logged[1]
    # Unexpected errors are logged with their traceback where they are masked (schema/errors.py).
    assert any(name == "gateway.graphql" for name, _ in logged[0])


@pytest.mark.parametrize(
    ("query", "options", "refusal"),
    [
        ("query A { things { name } }", {"operation_name": "Z"}, CannotGetOperationTypeError),
        (
            'mutation { rename(name: "x") { name } }',
            {"allowed_operation_types": {OperationType.QUERY}},
            InvalidOperationTypeError,
        ),
    ],
)
async def test_requests_strawberry_refuses_are_refused_alike(
    query: str, options: dict[str, Any], refusal: type[Exception]
) -> None:
    schema = _schema()
    for prepared in (True, False):
        schema.prepared_execution = prepared
        with pytest.raises(refusal):
            await schema.execute(query, **options)


class _FailingExecutor(ExecutionContext):
    def execute_operation(self, serially: bool | None = None) -> Any:
        raise RuntimeError("executor failed")


async def test_an_executor_failure_is_the_same_error_result() -> None:
    schema = _schema(execution_context_class=_FailingExecutor)
    prepared, standard = await _both(schema, "{ things { name } }")
    assert _everything(prepared) == _everything(standard)
    assert prepared.data is None
    assert [e.message for e in prepared.errors] == ["executor failed"]


async def test_a_prepared_operation_skips_the_extensions(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []
    original = PreparedOperations.__init__

    def counting(self: PreparedOperations, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(PreparedOperations, "__init__", counting)
    schema = _schema()
    made.clear()  # the schema makes one to see what its extensions are
    for _ in range(3):
        result = await schema.execute('{ thing(name: "g") { name } }')
        assert result.errors is None
        assert result.data == {"thing": {"name": "g"}}
    assert made == []
    # A text that does not validate goes through strawberry, extension and all.
    result = await schema.execute("{ things { nope } }")
    assert result.errors and len(made) == 1


def test_the_shortcut_is_off_when_the_schema_has_other_extensions() -> None:
    class Other(PreparedOperations):
        pass

    schema = PreparedSchema(
        query=Query, extensions=[lambda: Other([DEPTH_RULE])], prepared_rules=[DEPTH_RULE]
    )
    assert schema._shortcut is False
    assert _schema()._shortcut is True


def test_a_rule_set_unlike_the_extensions_turns_the_shortcut_off() -> None:
    schema = PreparedSchema(
        query=Query, extensions=[lambda: PreparedOperations([DEPTH_RULE])], prepared_rules=[]
    )
    assert schema._shortcut is False


@pytest.fixture
def collected(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The root fields graphql-core's `collect_fields` collected, one entry per call."""
    calls: list[object] = []
    original = graphql_executor.collect_fields

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[4])
        return original(*args, **kwargs)

    monkeypatch.setattr(graphql_executor, "collect_fields", counting)
    return calls


async def test_root_fields_are_collected_once_per_value_of_the_directives_variables(
    collected: list[object],
) -> None:
    schema = _schema()
    query = (
        'query($y: Boolean!) { a: thing(name: "g") @include(if: $y) { name }'
        ' b: thing(name: "g") { nick } }'
    )
    for y in (True, False, True, False, True):
        result = await schema.execute(query, variable_values={"y": y})
        assert result.errors is None
        assert list(result.data) == (["a", "b"] if y else ["b"])
    assert len(collected) == 2
    # A mutation's root fields are kept too.
    for _ in range(3):
        result = await schema.execute('mutation { rename(name: "x") { name } }')
        assert result.errors is None
    assert len(collected) == 3


async def test_the_standard_mode_collects_root_fields_on_every_request(
    collected: list[object],
) -> None:
    standard = type("Standard", (ExecutionContext,), {"executor_mode": "standard"})
    schema = _schema(execution_context_class=standard)
    for _ in range(3):
        assert (await schema.execute('{ thing(name: "g") { name } }')).errors is None
    assert len(collected) == 3


def _verify_schema() -> PreparedSchema:
    verify = type("Verify", (ExecutionContext,), {"executor_mode": "verify"})
    return _schema(execution_context_class=verify)


async def test_verify_mode_fails_loudly_when_kept_root_fields_differ() -> None:
    schema = _verify_schema()
    query = '{ a: thing(name: "g") { name } b: thing(name: "g") { nick } }'
    assert (await schema.execute(query)).errors is None
    setup = _setup(schema, query)
    grouped, usages, plan = setup.root_fields[()]
    setup.root_fields[()] = ({"a": grouped["a"]}, usages, plan)
    result = await schema.execute(query)
    assert result.data is None
    assert result.errors is not None
    assert result.errors[0].message.startswith("Kept and collected root fields differ")


async def test_verify_mode_fails_loudly_when_the_setup_differs_from_graphql_cores_build() -> None:
    schema = _verify_schema()
    query = '{ ...F } fragment F on Query { thing(name: "g") { name } }'
    assert (await schema.execute(query)).errors is None
    setup = _setup(schema, query)
    setup.fragment_definitions = {}
    result = await schema.execute(query)
    assert result.data is None
    assert result.errors is not None
    assert result.errors[0].message.startswith("Prepared and graphql-core executors differ")


def _setup(schema: PreparedSchema, query: str) -> OperationSetup:
    document = schema.documents.cached(query)
    assert document is not None
    operation = document.operations[None]
    assert operation is not None
    assert isinstance(operation.setup, OperationSetup)
    return operation.setup
