"""A connection inside a page's nodes (`Member.usages` under `members`, declared
`declare.ToMany`) written as JSON by PostgreSQL inside the nodes' JSON (schema/engine/json_sql.py
`JsonPage`) answers exactly as the objects do: the same bytes as the standard executor's, for
owners and admins (every member's usage) and for plain members (their own only, which keeps
the objects), with the page's order and size; any argument or field the JSON does not write
(after, pageInfo, edges, totalCount, a variable, a size outside the limits) keeps the objects
and their errors; SQLite keeps the objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from gateway.db import models
from schema.engine import projection
from schema.engine.json_sql import JsonNodes, json_page
from tests.conftest import Client, Env
from tests.engine.helpers import both, delete_user, standard_app
from tests.usage.helpers import event, ingest_ok

pytestmark = pytest.mark.settings(graphql_executor="compiled")

USAGE = "id modelName promptTokens completionTokens creditsUsed createdAt"
DASHBOARD = (
    "query($o: ID!) { organization(id: $o) { id members(first: 20) { nodes { id role"
    " user { email displayName } usages%s { %s } } } } }"
)


@pytest.fixture
async def standard(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    async with standard_app(env) as http:
        yield http


async def _world(env: Env) -> tuple[str, dict[str, Client]]:
    """An organization of an owner, an admin, two members (one without usage) and a member
    whose user is deleted; each of the others used it a few times, the owner 7 times."""
    owner = await env.user(name="Owner")
    org_id = await env.organization(owner)
    people = {"owner": owner}
    for name, role in (("admin", "admin"), ("member", "member"), ("idle", "member")):
        people[name] = await env.member(org_id, role)
    people["gone"] = await env.member(org_id, "member")
    counts = {"owner": 7, "admin": 2, "member": 3, "gone": 1}
    await ingest_ok(
        env,
        *[
            event(people[name].user_id, organizationId=org_id, model=f"{name}-{i}")
            for name, count in counts.items()
            for i in range(count)
        ],
        event(owner.user_id, model="personal"),  # not the organization's
    )
    await delete_user(env, people["gone"])
    return org_id, people


def _pages_inside(statements: list[str]) -> bool:
    """A members page read as JSON with the usage pages inside it."""
    return any(
        "AS node_json" in s and "FROM members" in s and "usage_records" in s for s in statements
    )


def _usage_reads(statements: list[str]) -> int:
    """Usage pages read on their own (as objects or as their own JSON)."""
    return len([s for s in statements if "usage_records" in s and "members" not in s])


@pytest.mark.parametrize("viewer", ["owner", "admin"])
async def test_a_managers_dashboard_is_one_statement(
    env: Env, standard: httpx.AsyncClient, viewer: str
) -> None:
    org_id, people = await _world(env)
    query = DASHBOARD % ("(first: 5)", f"nodes {{ {USAGE} user {{ email }} }}")
    body, statements = await both(env, standard, people[viewer], query, {"o": org_id})
    members = body["data"]["organization"]["members"]["nodes"]
    sizes = sorted(len(m["usages"]["nodes"]) for m in members)
    assert sizes == [0, 1, 2, 3, 5]
    postgresql = env.backend == "postgresql"
    assert _pages_inside(statements) == postgresql
    assert _usage_reads(statements) == (0 if postgresql else 1)


async def test_a_plain_member_sees_their_own_usage_by_the_objects(
    env: Env, standard: httpx.AsyncClient
) -> None:
    org_id, people = await _world(env)
    query = DASHBOARD % ("(first: 5)", f"nodes {{ {USAGE} }}")
    body, statements = await both(env, standard, people["member"], query, {"o": org_id})
    usages = [m["usages"] for m in body["data"]["organization"]["members"]["nodes"]]
    assert usages.count(None) == 4 and [len(u["nodes"]) for u in usages if u] == [3]
    assert not _pages_inside(statements)
    assert _usage_reads(statements) == 1
    # The members' users joined to their page, as before.
    assert not any(s.lstrip().startswith("SELECT users.") for s in statements)


@pytest.mark.parametrize(
    ("arguments", "connection"),
    [
        pytest.param("(first: 2)", "__typename n: nodes { __typename id }", id="typename"),
        pytest.param("(first: 0)", "nodes { id }", id="first-0"),
        pytest.param("(first: 100)", "nodes { id }", id="first-at-the-limit"),
        pytest.param("", "nodes { id }", id="no-first"),
        pytest.param("(first: 2)", "nodes { id } pageInfo { hasNextPage endCursor }", id="info"),
        pytest.param("(first: 2)", "edges { cursor node { id } }", id="edges"),
        pytest.param("(first: 2)", "nodes { id } totalCount", id="total-count"),
        pytest.param("(first: 2, after: $after)", "nodes { id }", id="after"),
        pytest.param("(first: $n)", "nodes { id }", id="a-variable"),
        pytest.param("(first: 2)", "nodes { id organization { id } }", id="a-checked-object"),
        pytest.param("(first: 2)", "nodes { id metadata }", id="a-json-column"),
    ],
)
async def test_pages_answer_as_the_objects_do(
    env: Env, standard: httpx.AsyncClient, arguments: str, connection: str
) -> None:
    org_id, people = await _world(env)
    query = DASHBOARD % (arguments, connection)
    variables: dict[str, Any] = {"o": org_id}
    if "$after" in arguments:
        newest = await env.scalar(
            select(models.UsageRecord.id)
            .where(models.UsageRecord.user_id == people["owner"].user_id)
            .where(models.UsageRecord.organization_id == org_id)
            .order_by(models.UsageRecord.id.desc())  # type: ignore[union-attr]
        )
        from resolvers.pagination import encode_cursor

        query = query.replace("query($o: ID!)", "query($o: ID!, $after: String)")
        variables["after"] = encode_cursor(newest)
    if "$n" in arguments:
        query = query.replace("query($o: ID!)", "query($o: ID!, $n: Int)")
        variables["n"] = 2
    _, statements = await both(env, standard, people["owner"], query, variables)
    inside = env.backend == "postgresql" and arguments in (
        "(first: 2)",
        "(first: 0)",
        "(first: 100)",
    )
    inside = inside and connection in ("nodes { id }", "__typename n: nodes { __typename id }")
    assert _pages_inside(statements) == inside


@pytest.mark.parametrize("first", ["101", "-1"])
async def test_a_size_outside_the_limits_is_the_objects_error(
    env: Env, standard: httpx.AsyncClient, first: str
) -> None:
    org_id, people = await _world(env)
    query = DASHBOARD % (f"(first: {first})", "nodes { id }")
    body, statements = await both(env, standard, people["owner"], query, {"o": org_id}, True)
    assert "between 0 and 100" in body["errors"][0]["message"]
    assert not _pages_inside(statements)


async def test_a_value_the_json_cannot_hold_reads_the_page_as_objects(
    env: Env, standard: httpx.AsyncClient
) -> None:
    org_id, people = await _world(env)
    async with env.sessions() as session:
        await session.execute(
            update(models.Member)
            .where(models.Member.user_id == people["idle"].user_id)
            .values(role="mislaid")
        )
        await session.commit()
    query = DASHBOARD % ("(first: 5)", "nodes { id modelName }")
    body, statements = await both(env, standard, people["owner"], query, {"o": org_id}, True)
    assert body["errors"]
    if env.backend == "postgresql":  # read as JSON, then again as objects (the role's error)
        again = [s for s in statements if "ORDER BY members.id" in s and "node_json" not in s]
        assert _pages_inside(statements) and len(again) == 1


async def test_a_page_whose_node_is_out_of_range_is_null(env: Env) -> None:
    """No GraphQL field of a usage is checked row by row today (its integers are `BigInt`s):
    the page's JSON is made here with `promptTokens` as an `Int`, whose 2**40 has no JSON, and
    the member's JSON is NULL (its page read again as objects, by `pages_by_parent`)."""
    if env.backend != "postgresql":
        pytest.skip("JSON is written by PostgreSQL")
    org_id, people = await _world(env)
    async with env.sessions() as session:
        await session.execute(
            update(models.UsageRecord)
            .where(models.UsageRecord.user_id == people["admin"].user_id)
            .values(prompt_tokens=2**40)
        )
        await session.commit()
    nodes = (("id", "id", "ID", False, None), ("t", "prompt_tokens", "Int", False, None))
    child = projection.JsonPageChild(
        "usages", 5, "UsageConnection", (("nodes", "nodes"),), "Usage", nodes
    )
    made = projection.json_nodes("Member", [("u", child, "", True, None)])
    assert made is not None
    source, column = json_page(models.Member, made.decide("member_usage", True))
    async with env.sessions() as session:
        rows = (
            await session.execute(
                select(models.Member.user_id, column)
                .select_from(source)
                .where(models.Member.organization_id == org_id)
            )
        ).all()
    written = {user_id: value for user_id, value in rows}
    assert written[people["admin"].user_id] is None
    assert written[people["idle"].user_id] == '{"u":{"nodes":[]}}'
    assert written[people["member"].user_id].startswith('{"u":{"nodes":[{"id":"usg-')
    hidden = json_page(models.Member, made.decide("member_usage", False))[1]
    async with env.sessions() as session:
        values = set((await session.execute(select(hidden).select_from(source))).scalars())
    assert values == {'{"u":null}'}


@pytest.mark.settings(graphql_executor="compiled", graphql_nested_pages="off")
async def test_nested_pages_off_reads_the_objects(env: Env) -> None:
    org_id, people = await _world(env)
    query = DASHBOARD % ("(first: 5)", "nodes { id }")
    with env.counter.counting() as statements:
        await people["owner"].gql_data(query, {"o": org_id})
    assert not _pages_inside(statements)
    assert _usage_reads(statements) == 1


def test_a_page_needs_its_field_declared_and_its_rule_decided() -> None:
    child = projection.JsonPageChild(
        "usages",
        5,
        "UsageConnection",
        (("nodes", "nodes"),),
        "Usage",
        (("id", "id", "ID", False, None),),
    )
    nodes = projection.json_nodes(
        "Member", [("id", "id", "ID", False, None), ("u", child, "", True, None)]
    )
    assert isinstance(nodes, JsonNodes) and nodes.limits == (5,)
    assert not nodes.ready and nodes.decide("member_usage", False).ready
    assert nodes.decide("another rule", True) is nodes
    # The rule decides null: the field must be nullable.
    assert projection.json_nodes("Member", [("u", child, "", False, None)]) is None
    # Not declared on the type: objects.
    assert projection.json_nodes("Organization", [("u", child, "", True, None)]) is None
    wrong = child._replace(node_type="Payment")
    assert projection.json_nodes("Member", [("u", wrong, "", True, None)]) is None
