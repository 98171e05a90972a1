"""The schema's declarations on a small schema of their own: `schema.errors.mutation` (domain
errors to typed payload errors, with the session rolled back) and `schema.relay.connection`
(the standard arguments, a page function's own, `totalCount` only when asked for), and
`schema.rows.from_row` (fields read by name)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
import strawberry
from strawberry.types import ExecutionResult, Info

from gateway.errors import Conflict, Unauthenticated
from resolvers.pagination import Page, PageArgs
from schema.errors import Payload, mutation
from schema.relay import connection, connections
from schema.rows import from_row


@dataclass
class FakeSession:
    rollbacks: int = 0

    async def rollback(self) -> None:
        self.rollbacks += 1


@dataclass
class FakeContext:
    """What the declarations read of a request's context (the session only when they roll
    back, as `Context.session` is made at first use)."""

    sessions: list[FakeSession] = field(default_factory=list)
    settings: Any = field(
        default_factory=lambda: SimpleNamespace(default_page_size=2, max_page_size=3)
    )
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def session(self) -> FakeSession:
        if not self.sessions:
            self.sessions.append(FakeSession())
        return self.sessions[0]


@strawberry.type
class Thing:
    name: str


@strawberry.type
class ThingPayload(Payload):
    thing: Thing | None = None


FAILURES: dict[str, Exception] = {
    "conflict": Conflict("That name is taken", field="name"),
    "anonymous": Unauthenticated("Sign in first"),
    "bug": RuntimeError("a bug"),
}


@strawberry.type
class Mutation:
    @mutation("Make a thing, or fail as asked.")
    async def make_thing(self, info: Info, name: str) -> ThingPayload:
        if name in FAILURES:
            raise FAILURES[name]
        return ThingPayload(thing=Thing(name=name))


@dataclass
class Row:
    id: str
    parent_id: str


@strawberry.type
class Item:
    id: str

    @classmethod
    def from_model(cls, row: Row) -> Item:
        return cls(id=row.id)


ROWS = [Row(id=f"itm-{n}", parent_id=parent) for parent in ("a", "b") for n in range(3)]


async def items_page(
    ctx: FakeContext, parent: str, args: PageArgs, *, odd_only: bool = False
) -> Page[Row] | None:
    ctx.calls.append(("page", parent, args.first, odd_only))
    if parent == "hidden":
        return None
    rows = [r for r in ROWS if r.parent_id == parent and (not odd_only or r.id[-1] in "13")]
    return Page(items=rows[: args.first], has_next_page=len(rows) > (args.first or 0))


async def item_count(ctx: FakeContext, parent: str, *, odd_only: bool = False) -> int | None:
    ctx.calls.append(("count", parent, odd_only))
    return len([r for r in ROWS if r.parent_id == parent])


async def parent_key(ctx: FakeContext, parent_id: str) -> str:
    ctx.calls.append(("of", parent_id))
    return parent_id


async def items_pages(
    ctx: FakeContext, models: list[SimpleNamespace], args: PageArgs
) -> list[Page[Row] | Exception | None]:
    ctx.calls.append(("pages", tuple(m.id for m in models)))
    return [
        ValueError("no such parent") if m.id == "broken" else await items_page(ctx, m.id, args)
        for m in models
    ]


@strawberry.type
class Parent:
    _model: strawberry.Private[SimpleNamespace]

    items = connection(
        Item,
        items_page,
        count=item_count,
        of=parent_key,
        nullable=True,
        description="The parent's items.",
    )
    plain = connection(
        Item,
        lambda ctx, parent_id, args: items_page(ctx, parent_id, args),
        description="Items without a count.",
    )
    batched = connections(Item, items_pages, nullable=True, description="Items, a level at once.")


@strawberry.type
class Query:
    @strawberry.field
    def parent(self, key: str) -> Parent:
        return Parent(_model=SimpleNamespace(id=key))

    @strawberry.field
    def parents(self, keys: list[str]) -> list[Parent]:
        return [Parent(_model=SimpleNamespace(id=key)) for key in keys]


SCHEMA = strawberry.Schema(query=Query, mutation=Mutation)


async def run(document: str, ctx: FakeContext) -> Any:
    return await SCHEMA.execute(document, context_value=ctx)


MAKE = "mutation($name: String!) { makeThing(name: $name) { thing { name } errors { code field message } } }"


async def test_a_mutation_that_succeeds_answers_its_payload_without_errors() -> None:
    ctx = FakeContext()
    result = await SCHEMA.execute(MAKE, variable_values={"name": "lamp"}, context_value=ctx)
    assert result.errors is None
    assert result.data == {"makeThing": {"thing": {"name": "lamp"}, "errors": []}}
    assert ctx.sessions == []  # nothing to roll back: the session is not even made


async def test_a_domain_error_rolls_back_and_is_the_payloads_typed_error() -> None:
    ctx = FakeContext()
    result = await SCHEMA.execute(MAKE, variable_values={"name": "conflict"}, context_value=ctx)
    assert result.errors is None
    assert result.data == {
        "makeThing": {
            "thing": None,
            "errors": [{"code": "CONFLICT", "field": "name", "message": "That name is taken"}],
        }
    }
    assert ctx.session.rollbacks == 1


def original_error(result: ExecutionResult) -> Exception | None:
    """The exception behind a result that failed as a whole (no data, a GraphQL error)."""
    assert result.data is None
    assert result.errors is not None
    return result.errors[0].original_error


async def test_a_refused_caller_rolls_back_and_stays_an_error() -> None:
    ctx = FakeContext()
    result = await SCHEMA.execute(MAKE, variable_values={"name": "anonymous"}, context_value=ctx)
    assert isinstance(original_error(result), Unauthenticated)
    assert ctx.session.rollbacks == 1


async def test_an_unexpected_error_is_not_a_payload_error() -> None:
    result = await SCHEMA.execute(
        MAKE, variable_values={"name": "bug"}, context_value=FakeContext()
    )
    assert isinstance(original_error(result), RuntimeError)  # masked by coded_error


def test_a_mutation_without_info_is_refused_when_declared() -> None:
    async def make(name: str) -> ThingPayload:
        return ThingPayload()

    with pytest.raises(TypeError, match="info"):
        mutation()(make)


def test_the_mutation_field_keeps_its_arguments_and_description() -> None:
    sdl = SCHEMA.as_str()
    assert '"""Make a thing, or fail as asked."""\n  makeThing(name: String!): ThingPayload!' in sdl
    assert "type ThingPayload {\n  errors: [UserError!]!\n  thing: Thing\n}" in sdl


def test_a_connection_field_has_the_standard_arguments_then_the_page_functions_own() -> None:
    sdl = SCHEMA.as_str()
    standard = "first: Int = null, after: String = null, last: Int = null, before: String = null"
    assert f"items({standard}, oddOnly: Boolean! = false): ItemConnection\n" in sdl
    assert f"plain({standard}): ItemConnection!\n" in sdl
    assert f"batched({standard}): ItemConnection\n" in sdl


async def test_a_connection_pages_with_its_options_and_counts_only_when_asked() -> None:
    ctx = FakeContext()
    result = await run('{ parent(key: "a") { items(first: 1) { nodes { id } } } }', ctx)
    assert result.errors is None
    assert result.data == {"parent": {"items": {"nodes": [{"id": "itm-0"}]}}}
    assert ctx.calls == [("of", "a"), ("page", "a", 1, False)]

    ctx = FakeContext()
    query = '{ parent(key: "a") { items(oddOnly: true) { totalCount pageInfo { hasNextPage } } } }'
    result = await run(query, ctx)
    assert result.errors is None
    assert result.data == {
        "parent": {"items": {"totalCount": 3, "pageInfo": {"hasNextPage": False}}}
    }
    # `of` once: the page and the count share what it found.
    assert ctx.calls == [("of", "a"), ("page", "a", 2, True), ("count", "a", True)]


async def test_a_connection_is_null_when_its_page_is_and_its_count_without_a_counter() -> None:
    ctx = FakeContext()
    query = '{ h: parent(key: "hidden") { items { totalCount } } a: parent(key: "a") { plain { totalCount } } }'
    result = await run(query, ctx)
    assert result.errors is None
    assert result.data == {"h": {"items": None}, "a": {"plain": {"totalCount": None}}}


async def test_a_connection_reports_bad_page_arguments() -> None:
    result = await run('{ parent(key: "a") { plain(first: 4) { totalCount } } }', FakeContext())
    assert result.errors is not None
    assert result.errors[0].message == "first must be between 0 and 3"


async def test_connections_load_a_levels_pages_at_once_with_errors_per_parent() -> None:
    ctx = FakeContext()
    query = '{ parents(keys: ["a", "hidden", "broken"]) { batched { nodes { id } } } }'
    result = await run(query, ctx)
    # The standard executor calls the batch form once per parent (resolve_one); the compiled
    # executor once per level (tests/engine/test_graphql_execution.py).
    assert [call for call in ctx.calls if call[0] == "pages"] == [
        ("pages", ("a",)),
        ("pages", ("hidden",)),
        ("pages", ("broken",)),
    ]
    assert result.data == {
        "parents": [
            {"batched": {"nodes": [{"id": "itm-0"}, {"id": "itm-1"}]}},
            {"batched": None},
            {"batched": None},
        ]
    }
    assert result.errors is not None
    assert [e.message for e in result.errors] == ["no such parent"]


@strawberry.type
class Kept:
    id: str
    name: str
    label: str
    _model: strawberry.Private[object]

    @strawberry.field
    def shout(self) -> str:  # a resolver field: not the row's to give
        return self.name.upper()


def test_from_row_copies_fields_by_name_keeps_the_row_and_takes_given_values() -> None:
    row = SimpleNamespace(id="x-1", name="lamp", label="stored", other="ignored")
    built = from_row(Kept, row, label="given")
    assert built == Kept(id="x-1", name="lamp", label="given", _model=row)
    assert built._model is row
    assert from_row(Thing, row) == Thing(name="lamp")  # a type without a row of its own


def test_from_row_fails_on_a_row_without_a_field() -> None:
    with pytest.raises(AttributeError, match="label"):
        from_row(Kept, SimpleNamespace(id="x-1", name="lamp"))
