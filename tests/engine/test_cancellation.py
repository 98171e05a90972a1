"""graphql-core cancels the siblings of a field whose error nulls their parent: a resolver so
cancelled still runs to its end (schema/engine/execution.py `with_abort_signal`), so no statement is
left half-way on the request's connection."""

from __future__ import annotations

import asyncio

import pytest
import strawberry

from schema.engine.execution import ExecutionContext
from tests.conftest import Env


def test_graphql_core_awaits_resolvers_through_with_abort_signal() -> None:
    assert any("with_abort_signal" in vars(base) for base in ExecutionContext.__mro__[1:]), (
        "graphql-core no longer awaits resolver results through "
        "ExecutionContext.with_abort_signal: schema/engine/execution.py must hook its new way"
    )


FINISHED: list[str] = []


@strawberry.type
class Inner:
    @strawberry.field
    async def slow(self) -> int:
        for _ in range(20):  # a statement in flight
            await asyncio.sleep(0)
        FINISHED.append("slow")
        return 1

    @strawberry.field
    async def failing(self) -> int:  # non-null: its error nulls `inner`
        await asyncio.sleep(0)
        raise ValueError("no")


@strawberry.type
class Query:
    @strawberry.field
    def inner(self) -> Inner | None:
        return Inner()


async def test_a_sibling_cancelled_by_graphql_core_runs_to_its_end() -> None:
    FINISHED.clear()
    standard = type("Standard", (ExecutionContext,), {"executor_mode": "standard"})
    schema = strawberry.Schema(query=Query, execution_context_class=standard)
    result = await schema.execute("{ inner { slow failing } }")
    assert result.data == {"inner": None}
    assert FINISHED == ["slow"], (
        "the cancelled sibling did not finish: graphql-core's cancellation reached it "
        "(see schema/engine/execution.py, with_abort_signal)"
    )


SIBLINGS = """query($org: ID!) { organization(id: $org) {
  memberCount apiKeys(first: 5) { totalCount nodes { id } } invites(first: 5) { totalCount }
  members(first: 1000) { totalCount } usages(first: 5) { nodes { id } } } }"""


@pytest.mark.settings(graphql_executor="standard")
async def test_a_field_error_leaves_the_connection_usable(env: Env) -> None:
    owner = await env.user()
    org = await env.organization(owner)
    for _ in range(10):
        body = await owner.gql(SIBLINGS, {"org": org})
        assert body["data"] == {"organization": None}
        assert [e["extensions"]["code"] for e in body["errors"]] == ["VALIDATION_FAILED"]
    assert (await owner.get("/users/me")).status_code == 200
    assert (await owner.gql_data("{ viewer { id } }"))["viewer"]["id"] == owner.user_id
