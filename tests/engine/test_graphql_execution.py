"""schema/engine/execution.py's shortcuts answer exactly as graphql-core's standard executor.

Two of them: compiled query plans (schema/engine/, the default) and the leaf-field shortcut
the standard path keeps. Each query runs on plain strawberry and on both, and data and errors
(message, path, locations) must be the same. The schema here is built to fail: nulls in non-null
fields, bad enum and int values, failing sync and async resolvers, abstract types.
(The whole test suite also runs every GraphQL query of the real schema through both executors:
tests/conftest.py sets `graphql_executor=verify`.)
"""

from __future__ import annotations

import asyncio
import enum
from typing import Annotated, Any

import pytest
import strawberry

from schema.declare import batched, resolve_one
from schema.engine import run as compiled_run
from schema.engine.execution import ExecutionContext
from schema.engine.prepared import PreparedOperations

BATCH_CALLS: list[int] = []  # parents per call of the batch forms below


@strawberry.enum
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Owner(Named):
    age: int | None = None


@strawberry.type
class Thing(Named):
    nick: str | None
    color: Color
    count: int
    tags: list[str]
    favorite: Named | None = None

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.name.upper() * times

    @strawberry.field
    async def owner(self) -> Owner | None:
        return await _owner_of(self)

    @strawberry.field
    async def required_owner(self) -> Owner:
        owner = await _owner_of(self)
        return owner if self.count != 2 else None  # type: ignore[return-value]

    @strawberry.field
    async def siblings(self, first: int = 2) -> list[Thing]:
        await asyncio.sleep(0)
        return _things()[:first]

    @strawberry.field
    def paint(self, color: Color = Color.RED) -> str:
        return f"{self.name} in {color.value}"

    @strawberry.field
    def broken(self) -> str | None:
        raise RuntimeError(f"broken {self.name}")

    @strawberry.field
    @batched(lambda things, suffix="": _buddies_of(things, suffix))
    async def buddy(self, suffix: str = "") -> Owner | None:
        return await resolve_one(_buddies_of, self, suffix)  # type: ignore[no-any-return]

    @strawberry.field
    @batched(lambda things: _required_buddies_of(things))
    async def required_buddy(self) -> Owner:
        return await resolve_one(_required_buddies_of, self)  # type: ignore[no-any-return]


async def _buddies_of(things: list[Thing], suffix: str = "") -> list[Owner | Exception | None]:
    """A batch form: a value, an error or a null per parent; bad arguments fail them all."""
    BATCH_CALLS.append(len(things))
    await asyncio.sleep(0)
    if suffix == "!":
        raise ValueError("no exclamations")
    return [
        ValueError(f"{t.name} has no buddy")
        if t.nick == "orphan"
        else (Owner(name=f"buddy of {t.name}{suffix}") if t.name else None)
        for t in things
    ]


async def _required_buddies_of(things: list[Thing]) -> list[Owner | None]:
    BATCH_CALLS.append(len(things))
    return [Owner(name="r") if t.count != 2 else None for t in things]


async def _owner_of(thing: Thing) -> Owner | None:
    await asyncio.sleep(0)
    if thing.nick == "orphan":
        raise ValueError("no owner for an orphan")
    return Owner(name=f"owner of {thing.name}", age=None if thing.count > 1 else 40)


@strawberry.type
class Other:
    label: str


Found = Annotated[Thing | Other, strawberry.union("Found")]


def _things() -> list[Thing]:
    return [
        Thing(name="a", nick=None, color=Color.RED, count=1, tags=["x"]),
        # Broken on purpose: null in a non-null field, bad enum value, bad int.
        Thing(name=None, nick="n", color=Color.BLUE, count=2, tags=[]),  # type: ignore[arg-type]
        Thing(name="c", nick="orphan", color="green", count="many", tags=["y"]),  # type: ignore[arg-type]
    ]


def _good() -> Thing:
    return Thing(
        name="g", nick=None, color=Color.BLUE, count=1, tags=["t", "u"], favorite=Owner(name="f")
    )


@strawberry.type
class Query:
    @strawberry.field
    def things(self) -> list[Thing]:
        return _things()

    @strawberry.field
    def nullable_things(self) -> list[Thing | None]:
        return list(_things())

    @strawberry.field
    async def thing(self, name: str) -> Thing | None:
        await asyncio.sleep(0)
        return next((t for t in [_good(), *_things()] if t.name == name), None)

    @strawberry.field
    async def required_thing(self) -> Thing:
        return _things()[1]

    @strawberry.field
    def named(self) -> list[Named]:
        return [_good(), Owner(name="o", age=3)]

    @strawberry.field
    def found(self) -> list[Found]:
        return [_good(), Other(label="l")]

    @strawberry.field
    def unreadable_things(self) -> list[Thing | None]:
        """A Thing whose plain attributes cannot be read: the read is the field's error."""
        thing = _good()
        del thing.nick  # nullable: the field is null
        del thing.name  # non-null: the whole Thing is null
        return [thing, _good()]

    @strawberry.field
    def wrong_type(self) -> Thing | None:
        return Other(label="not a thing")  # type: ignore[return-value]

    @strawberry.field
    def cast_things(self) -> list[Thing | None]:
        """A Thing cast to Owner is not a Thing; an Owner cast to Thing is."""
        return [
            strawberry.cast(Owner, _good()),
            strawberry.cast(Thing, Owner(name="cast")),  # type: ignore[list-item]
            _good(),
        ]


@strawberry.type
class Mutation:
    @strawberry.mutation
    def rename(self, name: str) -> Thing:
        return Thing(name=name, nick=None, color=Color.RED, count=0, tags=[])


def _schemas() -> tuple[strawberry.Schema, strawberry.Schema, strawberry.Schema]:
    standard_shortcut = type("Standard", (ExecutionContext,), {"executor_mode": "standard"})
    return (
        strawberry.Schema(query=Query, mutation=Mutation),
        strawberry.Schema(query=Query, mutation=Mutation, execution_context_class=ExecutionContext),
        strawberry.Schema(
            query=Query, mutation=Mutation, execution_context_class=standard_shortcut
        ),
    )


def _outcome(result: Any) -> tuple[Any, list[tuple[str, Any, Any]]]:
    errors = [
        (error.message, error.path, [(loc.line, loc.column) for loc in error.locations or ()])
        for error in result.errors or []
    ]
    return result.data, sorted(errors, key=repr)


SYNC_QUERIES = [
    "{ nullableThings { name nick color count tags shout(times: 2) } }",
    "{ nullableThings { n: name nickname: nick c: color } }",
    "{ things { name } }",
    "{ nullableThings { count } }",
    "{ nullableThings { __typename name @include(if: false) nick @skip(if: true) color } }",
    "query($yes: Boolean!) { nullableThings { ...F } } fragment F on Thing { name @include(if: $yes) count }",
    "{ named { __typename name ... on Owner { age } ... on Thing { tags } } }",
    "{ found { __typename ... on Thing { name } ... on Other { label } } }",
    "{ named { ... on Thing { favorite { __typename name ... on Owner { age } } } } }",
    "{ wrongType { name } }",
    "{ castThings { name } }",
    "{ nullableThings { broken tags } }",
    "{ a: nullableThings { name } b: nullableThings { nick } }",
    "{ unreadableThings { nick count } }",
    "{ unreadableThings { count name nick } }",
]

ASYNC_QUERIES = [
    *SYNC_QUERIES,
    '{ thing(name: "g") { name owner { name age } siblings { name } } }',
    '{ thing(name: "a") { short: siblings(first: 1) { name } long: siblings(first: 3) { nick } } }',
    "{ nullableThings { owner { name age } } }",
    "{ nullableThings { requiredOwner { name } } }",
    "{ things { name requiredOwner { name } } }",
    "{ requiredThing { name } }",
    '{ requiredThing { nick } other: thing(name: "g") { name } }',
    "query($n: String!) { thing(name: $n) { name siblings(first: 3) { name owner { age } } } }",
    "{ nullableThings { siblings(first: 3) { name count owner { name } } } }",
    '{ nullableThings { name buddy { name } b: buddy(suffix: "?") { name } } }',
    '{ nullableThings { name buddy(suffix: "!") { name } } }',
    "{ nullableThings { requiredBuddy { name } } }",
    "{ things { name requiredBuddy { name } } }",
    "{ nullableThings { siblings(first: 3) { name buddy { name } } } }",
    '{ thing(name: "g") { buddy { name } siblings { buddy { name } } } }',
]


@pytest.mark.parametrize("query", SYNC_QUERIES)
def test_shortcuts_give_the_same_data_and_errors(query: str) -> None:
    standard, compiled_schema, shortcut = _schemas()
    variables = {"yes": True}
    expected = _outcome(standard.execute_sync(query, variable_values=variables))
    assert _outcome(compiled_schema.execute_sync(query, variable_values=variables)) == expected
    assert _outcome(shortcut.execute_sync(query, variable_values=variables)) == expected


@pytest.mark.parametrize("query", ASYNC_QUERIES)
async def test_shortcuts_give_the_same_answer_when_executed_async(query: str) -> None:
    standard, compiled_schema, shortcut = _schemas()
    variables = {"yes": True, "n": "a"}
    expected = _outcome(await standard.execute(query, variable_values=variables))
    assert _outcome(await compiled_schema.execute(query, variable_values=variables)) == expected
    assert _outcome(await shortcut.execute(query, variable_values=variables)) == expected


async def test_a_plan_is_kept_per_value_of_the_variables_directives_use() -> None:
    standard, compiled_schema, _ = _schemas()
    query = (
        "query($yes: Boolean!) { nullableThings { name @include(if: $yes) count @skip(if: $yes) } }"
    )
    for yes in (True, False, True):
        expected = _outcome(await standard.execute(query, variable_values={"yes": yes}))
        got = _outcome(await compiled_schema.execute(query, variable_values={"yes": yes}))
        assert got == expected
        assert list(got[0]["nullableThings"][0]) == (["name"] if yes else ["count"])


def _prepared_compiled_schema() -> strawberry.Schema:
    # The gateway's documents are parsed once per query text (PreparedOperations), so its
    # plans, and what they remember, last from one request to the next.
    return strawberry.Schema(
        query=Query,
        execution_context_class=ExecutionContext,
        extensions=[lambda: PreparedOperations()],
    )


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    """The first argument of each call of `compiled_run.<name>`."""
    calls: list[Any] = []
    original = getattr(compiled_run, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(compiled_run, name, spy)
    return calls


async def test_enum_arguments_are_converted_once_per_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conversions = _spy(monkeypatch, "convert_arguments")
    standard, _, _ = _schemas()
    compiled_schema = _prepared_compiled_schema()
    query = "query($n: String!, $c: Color!) { thing(name: $n) { paint(color: $c) } }"
    for name, color in (("g", "RED"), ("a", "BLUE"), ("g", "RED"), ("g", "BLUE")):
        variables = {"n": name, "c": color}
        expected = _outcome(await standard.execute(query, variable_values=variables))
        got = _outcome(await compiled_schema.execute(query, variable_values=variables))
        assert got == expected
        assert got[0]["thing"]["paint"] == f"{name} in {color.lower()}"
    # `name` is a plain scalar (never converted); `color` once per value.
    assert [list(c) for c in conversions] == [["color"], ["color"]]


async def test_scalar_arguments_are_read_without_coercion_or_conversion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coercions = _spy(monkeypatch, "get_argument_values")
    conversions = _spy(monkeypatch, "convert_arguments")
    standard, _, _ = _schemas()
    compiled_schema = _prepared_compiled_schema()
    query = (
        'query($n: String!, $t: Int!) { thing(name: $n) { shout(times: $t) b: buddy(suffix: "?")'
        " { name } siblings(first: 1) { name } } }"
    )
    for name, times in (("g", 1), ("a", 2)):
        variables = {"n": name, "t": times}
        expected = _outcome(await standard.execute(query, variable_values=variables))
        got = _outcome(await compiled_schema.execute(query, variable_values=variables))
        assert got == expected
        assert got[0]["thing"]["shout"] == name.upper() * times
    assert coercions == [] and conversions == []


ARGUMENT_CASES = [
    # A variable left out: the argument's default (read the general way).
    ("query($t: Int) { nullableThings { shout(times: $t) } }", {}),
    # A variable given as null for a non-null argument with a default: the field's error.
    ("query($t: Int) { nullableThings { shout(times: $t) } }", {"t": None}),
    ("query($t: Int) { nullableThings { shout(times: $t) } }", {"t": 3}),
    # A variable's own default.
    ("query($t: Int = 2) { nullableThings { shout(times: $t) } }", {}),
    ('query($n: String!) { thing(name: $n) { buddy(suffix: "?") { name } } }', {"n": "g"}),
    ("query($s: String) { nullableThings { buddy(suffix: $s) { name } } }", {"s": None}),
    ("query($s: String) { nullableThings { buddy(suffix: $s) { name } } }", {}),
    ("{ nullableThings { siblings(first: 1) { name } } }", {}),
]


@pytest.mark.parametrize(("query", "variables"), ARGUMENT_CASES)
async def test_arguments_are_read_as_graphql_core_reads_them(
    query: str, variables: dict[str, Any]
) -> None:
    standard, compiled_schema, _ = _schemas()
    expected = _outcome(await standard.execute(query, variable_values=variables))
    assert _outcome(await compiled_schema.execute(query, variable_values=variables)) == expected


async def test_queries_run_on_the_compiled_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[Any] = []
    original = compiled_run.Run.execute

    def spy(self: compiled_run.Run, plan: Any, root_value: Any) -> Any:
        runs.append(plan)
        return original(self, plan, root_value)

    monkeypatch.setattr(compiled_run.Run, "execute", spy)
    _, compiled_schema, shortcut = _schemas()
    query = '{ thing(name: "g") { name siblings(first: 1) { name } } }'
    await shortcut.execute(query)
    assert runs == []
    result = await compiled_schema.execute(query)
    assert result.errors is None
    assert len(runs) == 1


async def test_a_batched_field_is_resolved_once_per_level_on_the_compiled_plan() -> None:
    standard, compiled_schema, _ = _schemas()
    query = "{ nullableThings { siblings(first: 3) { buddy { name } } buddy { name } } }"
    BATCH_CALLS.clear()
    expected = _outcome(await standard.execute(query))
    assert BATCH_CALLS == [1] * 12  # 3 things + 3 x 3 siblings, one call each
    BATCH_CALLS.clear()
    assert _outcome(await compiled_schema.execute(query)) == expected
    assert sorted(BATCH_CALLS) == [3, 9]  # the things, then all their siblings


async def test_a_batch_form_giving_the_wrong_number_of_values_fails_every_parent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def short(things: list[Thing], suffix: str = "") -> list[Owner]:
        return [Owner(name="only one")]

    monkeypatch.setattr(Thing.buddy, "__graphql_batch__", short)
    _, compiled_schema, _ = _schemas()
    result = await compiled_schema.execute("{ nullableThings { buddy { name } } }")
    assert result.data == {"nullableThings": [{"buddy": None}] * 3}
    assert [e.path for e in result.errors or ()] == [
        ["nullableThings", i, "buddy"] for i in range(3)
    ]
    assert "returned [<Owner instance>] for 3 parents" in str(result.errors)


@pytest.mark.parametrize(
    "query",
    [
        "{ __schema { queryType { name } } }",
        '{ __type(name: "Thing") { name } }',
        'mutation { rename(name: "z") { name } }',
    ],
)
async def test_introspection_and_mutations_fall_back_to_the_standard_executor(
    query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[Any] = []
    monkeypatch.setattr(compiled_run.Run, "execute", lambda *a: runs.append(a))
    standard, compiled_schema, _ = _schemas()
    expected = _outcome(await standard.execute(query))
    assert _outcome(await compiled_schema.execute(query)) == expected
    assert expected[1] == []
    assert runs == []


def test_usage_from_model_equals_the_constructor() -> None:
    from datetime import UTC, datetime

    from gateway.db.models import UsageRecord
    from resolvers.keyset import plain_row_type
    from schema.scalars import JSON, BigInt
    from schema.usage import Usage

    row_type = plain_row_type(UsageRecord)
    values = dict.fromkeys(row_type._fields)
    values.update(
        id="usg-1",
        generation_id="gen-1",
        provider_name="p",
        model_name="m",
        model_type_name="chat",
        operation=None,
        prompt_tokens=3,
        completion_tokens=4,
        total_tokens=7,
        cost_micro_usd=1_500,
        credits_used=2_000,
        overdrawn=False,
        metadata_={"k": [1]},
        created_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    )
    for record in (row_type(**values), row_type(**{**values, "metadata_": None})):
        fast = Usage.from_model(record)
        reference = Usage(
            id=strawberry.ID(record.id),
            generation_id=record.generation_id,
            provider_name=record.provider_name,
            model_name=record.model_name,
            model_type_name=record.model_type_name,
            operation=record.operation,
            prompt_tokens=BigInt(record.prompt_tokens),
            completion_tokens=BigInt(record.completion_tokens),
            total_tokens=BigInt(record.total_tokens),
            cost_usd=record.cost_micro_usd / 1_000_000,
            cost_micro_usd=BigInt(record.cost_micro_usd),
            credits_used=BigInt(record.credits_used),
            overdrawn=record.overdrawn,
            metadata=JSON(record.metadata_ or {}),
            created_at=record.created_at,
            _model=record,
        )
        assert vars(fast) == vars(reference)
        assert isinstance(fast, Usage)


def test_member_and_payment_from_model_equal_the_constructor() -> None:
    from datetime import UTC, datetime

    from gateway.db import models
    from resolvers.keyset import plain_row_type
    from schema.member import Member, Role
    from schema.payment import Payment, PaymentKind, PaymentStatus

    now = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    member = models.Member(
        id="mbr-1", organization_id="org-1", user_id="usr-1", role="admin", created_at=now
    )
    member.updated_at = now
    member_row = plain_row_type(models.Member)(
        **{k: getattr(member, k) for k in plain_row_type(models.Member)._fields}
    )
    for record in (member, member_row):
        reference = Member(
            id=strawberry.ID(record.id),
            role=Role(record.role),
            created_at=record.created_at,
            updated_at=record.updated_at,
            _model=record,
        )
        assert vars(Member.from_model(record)) == vars(reference)
    row_type = plain_row_type(models.Payment)
    values: dict[str, Any] = dict.fromkeys(row_type._fields)
    values.update(
        id="pay-1",
        status="failed",
        kind="purchase",
        amount_cents=1002,
        credits=10_020_000,
        currency="usd",
        failure_reason="declined",
        created_at=now,
        updated_at=now,
    )
    for creator in (None, "usr-1"):
        record = row_type(**{**values, "creator_user_id": creator})
        reference_payment = Payment(
            id=strawberry.ID(record.id),
            status=PaymentStatus(record.status),
            kind=PaymentKind(record.kind),
            amount_cents=record.amount_cents,
            credits=record.credits,
            currency=record.currency,
            creator_id=strawberry.ID(creator) if creator else None,
            failure_reason=record.failure_reason,
            created_at=record.created_at,
            updated_at=record.updated_at,
            paid_at=record.paid_at,
            _model=record,
        )
        assert vars(Payment.from_model(record)) == vars(reference_payment)


def test_user_from_model_equals_the_constructor() -> None:
    from datetime import UTC, datetime

    from gateway.db import models
    from resolvers.keyset import plain_row_type
    from schema.user import User

    now = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    user = models.User(
        id="usr-1", email="a@example.com", display_name="A", photo_url="", created_at=now
    )
    user.updated_at = now
    row_type = plain_row_type(models.User)
    for record in (user, row_type(**{k: getattr(user, k) for k in row_type._fields})):
        reference = User(
            id=strawberry.ID(record.id),
            email=record.email,
            display_name=record.display_name,
            photo_url=record.photo_url,
            terms_accepted_at=record.terms_accepted_at,
            created_at=record.created_at,
            updated_at=record.updated_at,
            _model=record,
        )
        found = User.from_model(record)
        assert vars(found) == vars(reference)
        assert isinstance(found, User)
