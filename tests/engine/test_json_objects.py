"""Nodes with to-one objects inside (`Usage.user`, `Member.user`, declared `declare.ToOne`)
written as JSON by PostgreSQL in the page's statement (schema/engine/json_sql.py
`JsonObject`) answer exactly as the objects do: the same bytes as the standard executor's,
null for a missing or deleted user, and pages whose values the JSON cannot hold read again as
objects. Field resolvers that check who may see them keep the objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select, update

from gateway.db import models
from schema.engine import projection
from schema.engine.json_sql import JsonNodes, JsonObject, json_page
from tests.conftest import Client, Env
from tests.engine.helpers import both, delete_user, read_as_json, standard_app, users_read
from tests.usage.helpers import event, ingest_ok

pytestmark = pytest.mark.settings(graphql_executor="compiled")

USER = "__typename id email displayName photoUrl termsAcceptedAt createdAt updatedAt"
ORGANIZATION_USAGES = (
    "query($o: ID!) { organization(id: $o) { usages(first: 10) { nodes { id modelName"
    " user { %s } } } } }"
)
MEMBERS = "query($o: ID!) { organization(id: $o) { members(first: 10) { nodes { %s } } } }"


@pytest.fixture
async def standard(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    async with standard_app(env) as http:
        yield http


async def _world(env: Env) -> tuple[Client, str, Client]:
    """Alice owns an organization; Bob (awkward name, accepted terms at a year-999 instant)
    and Carol (deleted later) are members; each used it."""
    alice = await env.user(name="Alice")
    bob = await env.user(name='Bob "the \\ builder" é 😀\t</script>')
    carol = await env.user(name="Carol")
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob)
    await env.add_member(org_id, carol)
    await ingest_ok(
        env,
        *(
            event(who.user_id, organizationId=org_id, model=f"model-{i}")
            for i, who in enumerate((alice, bob, carol, bob))
        ),
    )
    stamp = datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    async with env.sessions() as session:
        await session.execute(
            update(models.User).where(models.User.id == bob.user_id).values(terms_accepted_at=stamp)
        )
        await session.commit()
    return alice, org_id, carol


async def test_usage_nodes_with_their_users_are_one_statement_of_json(
    env: Env, standard: httpx.AsyncClient
) -> None:
    alice, org_id, _ = await _world(env)
    body, statements = await both(env, standard, alice, ORGANIZATION_USAGES % USER, {"o": org_id})
    nodes = body["data"]["organization"]["usages"]["nodes"]
    assert len(nodes) == 4 and all(n["user"]["__typename"] == "User" for n in nodes)
    assert 'Bob "the \\ builder" é 😀\t</script>' in {n["user"]["displayName"] for n in nodes}
    assert "0999-12-31T23:59:59.999999Z" in {n["user"]["termsAcceptedAt"] for n in nodes}
    postgresql = env.backend == "postgresql"
    assert read_as_json(statements) == postgresql
    assert users_read(statements) == (0 if postgresql else 1)


async def test_a_deleted_users_object_is_null_as_in_the_objects(
    env: Env, standard: httpx.AsyncClient
) -> None:
    alice, org_id, carol = await _world(env)
    await delete_user(env, carol)
    body, statements = await both(env, standard, alice, ORGANIZATION_USAGES % USER, {"o": org_id})
    users = [n["user"] for n in body["data"]["organization"]["usages"]["nodes"]]
    assert users.count(None) == 1
    assert read_as_json(statements) == (env.backend == "postgresql")
    query = MEMBERS % "id user { id email }"
    body, statements = await both(env, standard, alice, query, {"o": org_id})
    assert [m["user"] for m in body["data"]["organization"]["members"]["nodes"]].count(None) == 1
    assert read_as_json(statements) == (env.backend == "postgresql")


@pytest.mark.parametrize(
    "nodes",
    [
        pytest.param(
            "id role createdAt user { id email displayName photoUrl createdAt }", id="all"
        ),
        pytest.param("r: role u: user { e: email t: __typename } role", id="aliases"),
        pytest.param("...F user { ... on User { email } }", id="fragments"),
        pytest.param("user { email @include(if: $yes) id } role @skip(if: $yes)", id="directives"),
    ],
)
@pytest.mark.parametrize("yes", [True, False])
async def test_member_nodes_with_their_users_keep_graphql_semantics(
    env: Env, standard: httpx.AsyncClient, nodes: str, yes: bool
) -> None:
    alice, org_id, _ = await _world(env)
    query, variables = MEMBERS % nodes, {"o": org_id}
    if "$yes" in nodes:
        query = query.replace("query($o: ID!)", "query($o: ID!, $yes: Boolean!)")
        variables["yes"] = yes
    if "...F" in nodes:
        query += " fragment F on Member { id role user { displayName } }"
    _, statements = await both(env, standard, alice, query, variables)
    assert read_as_json(statements) == (env.backend == "postgresql")
    assert users_read(statements) == 0  # inside the JSON, or joined to the page


async def test_a_members_role_the_enum_lacks_reads_the_page_again_as_objects(
    env: Env, standard: httpx.AsyncClient
) -> None:
    alice, org_id, carol = await _world(env)
    async with env.sessions() as session:
        await session.execute(
            update(models.Member)
            .where(models.Member.user_id == carol.user_id)
            .values(role="mislaid")
        )
        await session.commit()
    query = MEMBERS % "id role user { email }"
    body, statements = await both(env, standard, alice, query, {"o": org_id}, errors=True)
    assert body["errors"]
    if env.backend == "postgresql":
        assert len([s for s in statements if "AS node_json" in s]) == 1
        assert len([s for s in statements if "ORDER BY members.id" in s]) == 2


async def test_usage_with_users_below_members_is_json_too(
    env: Env, standard: httpx.AsyncClient
) -> None:
    alice, org_id, _ = await _world(env)
    query = MEMBERS % "role usages(first: 3) { nodes { modelName creditsUsed user { email } } }"
    _, statements = await both(env, standard, alice, query, {"o": org_id})
    assert read_as_json(statements) == (env.backend == "postgresql")
    assert users_read(statements) == (0 if env.backend == "postgresql" else 1)


def test_an_object_needs_its_field_declared_a_plain_join_and_nullable() -> None:
    user = projection.JsonChild("user", "User", (("e", "email", "String", False, None),))
    assert projection.json_nodes("Usage", [("u", user, "", True, None)])
    assert projection.json_nodes("Usage", [("u", user, "", False, None)]) is None
    organization = projection.JsonChild("organization", "Organization", (("i", None, "", 1, 0),))
    assert projection.json_nodes("Usage", [("o", organization, "", True, None)]) is None
    unknown = projection.JsonChild("user", "User", (("e", "deletedAt", "DateTime", True, None),))
    assert projection.json_nodes("Usage", [("u", unknown, "", True, None)]) is None


def test_fields_inside_objects_count_towards_the_widest_selection() -> None:
    half = projection.MAX_JSON_FIELDS // 2
    inner = tuple((f"e{i}", "email", "String", False, None) for i in range(half))
    user = projection.JsonChild("user", "User", inner)
    outer = [(f"m{i}", "model_name", "String", False, None) for i in range(half - 1)]
    assert projection.json_nodes("Usage", [*outer, ("u", user, "", True, None)])
    wider = [*outer, ("x", "id", "ID", False, None), ("u", user, "", True, None)]
    assert projection.json_nodes("Usage", wider) is None


async def test_an_objects_value_out_of_range_leaves_its_node_without_json(env: Env) -> None:
    """A checked value inside an object that is out of range (here: an enum of display names
    that only Alice's is in) makes the whole node's JSON NULL, which a page reads again as
    objects; a missing (deleted) user is still `null`."""
    if env.backend != "postgresql":
        pytest.skip("JSON written by PostgreSQL")
    alice, org_id, carol = await _world(env)
    await delete_user(env, carol)
    only_alice = JsonNodes(
        "User", (("name", "display_name"),), (("display_name", (("Alice", "A"),)),)
    )
    user = JsonObject(models.User, "user_id", ("deleted_at",), only_alice)
    nodes = JsonNodes("Member", (("id", "user_id"), ("user", user)))
    async with env.sessions() as session:
        source, column = json_page(models.Member, nodes)
        statement = (
            select(models.Member.user_id, column)
            .select_from(source)
            .where(models.Member.organization_id == org_id)
        )
        written = {user_id: value for user_id, value in (await session.execute(statement)).all()}
    assert written.pop(alice.user_id) == f'{{"id":"{alice.user_id}","user":{{"name":"A"}}}}'
    assert written.pop(carol.user_id) == f'{{"id":"{carol.user_id}","user":null}}'
    assert list(written.values()) == [None]  # Bob's name is not in the enum
