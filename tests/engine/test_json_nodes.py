"""Connections whose nodes PostgreSQL writes as JSON (schema/engine/: compiler.py `_json_nodes`,
projection.py `json_nodes`, json_sql.py `json_column`) answer exactly as
the objects do: the same response, key order included, as the standard executor's.

Each query runs over HTTP on the app under test (compiled executor, which reads such pages as
JSON on PostgreSQL) and on a second app on the same database with the standard executor; the
bodies are compared as ordered pairs. The data holds what could differ between SQL's and
Python's serialization: quotes, backslashes, control characters and non-ASCII text, nulls,
integers beyond 2**53, whole-second, 1-microsecond, year-999 and infinite timestamps.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select, text, update

from gateway.db import models
from gateway.jsoncodec import dump_json
from schema.engine import projection
from schema.payment import PaymentKind, PaymentStatus
from tests.conftest import Client, Env
from tests.engine.helpers import both, read_as_json, standard_app
from tests.usage.helpers import event, ingest_ok

pytestmark = pytest.mark.settings(graphql_executor="compiled")

NODES = "id modelName operation promptTokens completionTokens creditsUsed overdrawn createdAt"
USER_PAGE = "query($u: ID!) { user(id: $u) { usages(first: 10) { nodes { %s } } } }"
MEMBERS = (
    "query($o: ID!) { organization(id: $o) { members(first: 10) { nodes { id"
    " usages(first: 3) { nodes { %s } } } } } }"
)
ORGANIZATION = "query($o: ID!) { organization(id: $o) { usages(first: 10) { nodes { %s } } } }"


async def _world(env: Env) -> tuple[Client, str, list[str]]:
    """Alice owns an organization Bob is in; their usage holds the awkward values."""
    alice = await env.user(name="Alice")
    bob = await env.user(name="Bob")
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob)
    await ingest_ok(
        env,
        event(alice.user_id, model='quote " backslash \\ slash /', operation="web_search"),
        event(alice.user_id, model="tab\tnewline\ncontrol\x01 é 😀 </script>"),
        event(alice.user_id, organizationId=org_id, promptTokens=2**53 + 1, credits=10**12),
        event(alice.user_id, organizationId=org_id),
        event(bob.user_id, organizationId=org_id, completionTokens=0),
    )
    ids = await env.all(select(models.UsageRecord.id).order_by(models.UsageRecord.id))
    stamps = [
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    async with env.sessions() as session:
        for usage_id, stamp in zip(ids, stamps, strict=False):
            await session.execute(
                update(models.UsageRecord)
                .where(models.UsageRecord.id == usage_id)
                .values(created_at=stamp)
            )
        if env.backend == "postgresql":  # infinite timestamps: PostgreSQL only
            for usage_id, value in zip(ids[3:], ("infinity", "-infinity"), strict=True):
                await session.execute(
                    text(
                        "UPDATE usage_records SET created_at = CAST(CAST(:v AS TEXT) AS TIMESTAMPTZ)"
                        " WHERE id = :id"
                    ),
                    {"v": value, "id": usage_id},
                )
        await session.commit()
    return alice, org_id, ids


@pytest.fixture
async def standard(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    async with standard_app(env) as http:
        yield http


_both, _read_as_json = both, read_as_json


async def _alices_usages(env: Env, standard: httpx.AsyncClient) -> tuple[list[Any], list[str]]:
    """Alice's own usage page (every awkward value, `NODES`), and the statements it took."""
    alice, _, _ = await _world(env)
    body, statements = await _both(env, standard, alice, USER_PAGE % NODES, {"u": alice.user_id})
    return body["data"]["user"]["usages"]["nodes"], statements


async def test_a_page_of_plain_columns_is_read_as_json_on_postgresql(
    env: Env, standard: httpx.AsyncClient
) -> None:
    nodes, statements = await _alices_usages(env, standard)
    assert len(nodes) == 4
    assert _read_as_json(statements) == (env.backend == "postgresql")


async def test_awkward_values_are_written_as_python_writes_them(
    env: Env, standard: httpx.AsyncClient
) -> None:
    nodes, _ = await _alices_usages(env, standard)
    models_ = {n["modelName"] for n in nodes}
    assert 'quote " backslash \\ slash /' in models_
    assert "tab\tnewline\ncontrol\x01 é 😀 </script>" in models_
    assert 2**53 + 1 in {n["promptTokens"] for n in nodes}
    assert 10**12 in {n["creditsUsed"] for n in nodes}
    assert {n["operation"] for n in nodes} == {"web_search", None}
    stamps = {n["createdAt"] for n in nodes}
    assert {"2026-01-02T03:04:05.000000Z", "2026-01-02T03:04:05.000001Z"} <= stamps
    assert "0999-12-31T23:59:59.999999Z" in stamps
    if env.backend == "postgresql":
        assert "9999-12-31T23:59:59.999999Z" in stamps  # infinity, as asyncpg reads it


@pytest.mark.parametrize(
    "nodes",
    [
        pytest.param("m: modelName id m2: modelName t: __typename createdAt", id="aliases"),
        pytest.param("__typename", id="typename-only"),
        pytest.param("id ...F ... on Usage { providerName id }", id="fragments"),
        pytest.param(
            "modelName @include(if: $yes) generationId @skip(if: $yes) id", id="directives"
        ),
    ],
)
@pytest.mark.parametrize("yes", [True, False])
async def test_selections_keep_graphql_semantics(
    env: Env, standard: httpx.AsyncClient, nodes: str, yes: bool
) -> None:
    alice, _, _ = await _world(env)
    query, variables = USER_PAGE % nodes, {"u": alice.user_id}
    if "$yes" in nodes:
        query = query.replace("query($u: ID!)", "query($u: ID!, $yes: Boolean!)")
        variables["yes"] = yes
    if "...F" in nodes:
        query += " fragment F on Usage { totalTokens costMicroUsd modelTypeName }"
    _, statements = await _both(env, standard, alice, query, variables)
    assert _read_as_json(statements) == (env.backend == "postgresql")


@pytest.mark.parametrize(
    "connection",
    [
        "usages(first: 2) { pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
        " totalCount nodes { id createdAt } }",
        "usages(last: 2) { pageInfo { hasNextPage hasPreviousPage } nodes { id modelName } }",
        "usages(first: 0) { nodes { id } }",
        "usages(first: 3) { n: nodes { id } pageInfo { endCursor } }",
    ],
)
async def test_pages_keep_their_cursors_and_counts(
    env: Env, standard: httpx.AsyncClient, connection: str
) -> None:
    alice, _, _ = await _world(env)
    query = "query($u: ID!) { user(id: $u) { " + connection + " } }"
    body, _ = await _both(env, standard, alice, query, {"u": alice.user_id})
    page = body["data"]["user"]["usages"]
    if "pageInfo" in page and "startCursor" in page["pageInfo"]:
        after = page["pageInfo"]["endCursor"]
        query = query.replace("first: 2)", "first: 2, after: $after)").replace(
            "query($u: ID!)", "query($u: ID!, $after: String)"
        )
        await _both(env, standard, alice, query, {"u": alice.user_id, "after": after})


async def test_members_and_organization_pages(env: Env, standard: httpx.AsyncClient) -> None:
    alice, org_id, _ = await _world(env)
    body, statements = await _both(env, standard, alice, MEMBERS % NODES, {"o": org_id})
    members = body["data"]["organization"]["members"]["nodes"]
    assert sorted(len(m["usages"]["nodes"]) for m in members) == [1, 2]
    assert _read_as_json(statements) == (env.backend == "postgresql")
    _, statements = await _both(env, standard, alice, ORGANIZATION % NODES, {"o": org_id})
    assert _read_as_json(statements) == (env.backend == "postgresql")


@pytest.mark.parametrize(
    "nodes",
    [
        pytest.param("id costUsd", id="a-converted-attribute"),
        pytest.param("id metadata", id="json"),
        pytest.param("id userId", id="a-resolver"),
        pytest.param("id organization { id }", id="an-object-its-resolver-checks"),
        pytest.param("id user { email organizations { id } }", id="an-object-with-a-resolver"),
    ],
)
async def test_other_fields_keep_the_objects(
    env: Env, standard: httpx.AsyncClient, nodes: str
) -> None:
    alice, _, _ = await _world(env)
    _, statements = await _both(env, standard, alice, USER_PAGE % nodes, {"u": alice.user_id})
    assert not _read_as_json(statements)


async def test_a_very_wide_selection_keeps_the_objects(
    env: Env, standard: httpx.AsyncClient
) -> None:
    alice, _, _ = await _world(env)
    wide = " ".join(f"m{i}: modelName" for i in range(projection.MAX_JSON_FIELDS + 1))
    body, statements = await _both(env, standard, alice, USER_PAGE % wide, {"u": alice.user_id})
    assert len(body["data"]["user"]["usages"]["nodes"][0]) == projection.MAX_JSON_FIELDS + 1
    assert not _read_as_json(statements)
    narrower = " ".join(f"m{i}: modelName" for i in range(projection.MAX_JSON_FIELDS))
    _, statements = await _both(env, standard, alice, USER_PAGE % narrower, {"u": alice.user_id})
    assert _read_as_json(statements) == (env.backend == "postgresql")


async def test_edges_keep_the_objects(env: Env, standard: httpx.AsyncClient) -> None:
    alice, _, _ = await _world(env)
    query = USER_PAGE % "id" + ""
    query = query.replace("nodes { id }", "nodes { id } edges { cursor node { id } }")
    _, statements = await _both(env, standard, alice, query, {"u": alice.user_id})
    assert not _read_as_json(statements)


CHECKOUT = """
mutation($input: StartCheckoutInput!) { startCheckout(input: $input) { errors { code } } }
"""
PAYMENTS = (
    "query($o: ID!) { viewer { payments(first: 10) { nodes { %s } } }"
    " organization(id: $o) { payments(first: 10) { nodes { %s } } } }"
)
PAYMENT_NODES = (
    "id status kind amountCents credits currency failureReason createdAt updatedAt paidAt"
    " __typename"
)


async def _payments(env: Env) -> tuple[Client, str, list[str]]:
    """Alice paid twice for herself (the second declined: cents ending in 02) and once for her
    organization: succeeded and failed payments, null and set `paidAt` and `failureReason`."""
    alice = await env.user(name="Alice")
    org_id = await env.organization(alice)
    for cents, org in ((1000, None), (1002, None), (1500, org_id)):
        await alice.gql_data(CHECKOUT, {"input": {"amountCents": cents, "organizationId": org}})
    ids = await env.all(select(models.Payment.id).order_by(models.Payment.id))
    return alice, org_id, ids


async def test_payments_are_read_as_json_with_their_enums(
    env: Env, standard: httpx.AsyncClient
) -> None:
    alice, org_id, _ = await _payments(env)
    query = PAYMENTS % (PAYMENT_NODES, PAYMENT_NODES)
    body, statements = await _both(env, standard, alice, query, {"o": org_id})
    mine = body["data"]["viewer"]["payments"]["nodes"]
    assert {n["status"] for n in mine} == {"SUCCEEDED", "FAILED"}
    assert {n["kind"] for n in mine} == {"CHECKOUT"}
    assert None in {n["paidAt"] for n in mine} and None in {n["failureReason"] for n in mine}
    assert _read_as_json(statements) == (env.backend == "postgresql")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        pytest.param("amount_cents", 2**31, id="an-int-beyond-32-bits"),
        pytest.param("status", "mislaid", id="an-unknown-enum-value"),
    ],
)
async def test_a_value_the_json_cannot_hold_answers_as_the_objects_do(
    env: Env, standard: httpx.AsyncClient, column: str, value: Any
) -> None:
    alice, org_id, ids = await _payments(env)
    async with env.sessions() as session:
        await session.execute(
            update(models.Payment).where(models.Payment.id == ids[0]).values({column: value})
        )
        await session.commit()
    query = PAYMENTS % (PAYMENT_NODES, PAYMENT_NODES)
    body, statements = await _both(env, standard, alice, query, {"o": org_id}, errors=True)
    assert body["errors"]
    assert body["data"]["organization"]["payments"]["nodes"]
    if env.backend == "postgresql":
        # Both pages read as JSON (in one statement: siblings); the viewer's, which has the
        # row, read again as objects.
        assert sum(s.count("AS node_json") for s in statements) == 2
        assert sum(s.count("FROM payments") for s in statements) == 3


def test_a_non_null_field_needs_a_not_null_column() -> None:
    assert projection.json_nodes("Usage", [("op", "operation", "String", True, None)])
    assert projection.json_nodes("Usage", [("op", "operation", "String", False, None)]) is None


def test_an_int_field_on_a_64_bit_column_is_checked_row_by_row() -> None:
    big = projection.json_nodes("Usage", [("t", "prompt_tokens", "BigInt", False, None)])
    small = projection.json_nodes("Usage", [("t", "prompt_tokens", "Int", False, None)])
    assert big is not None and big.int32 == ()
    assert small is not None and small.int32 == ("prompt_tokens",)
    assert projection.json_nodes("Usage", [("t", "prompt_tokens", "String", False, None)]) is None


def test_an_enum_field_needs_the_enum_its_column_was_registered_with() -> None:
    names = {member: member.name for member in PaymentStatus}
    nodes = projection.json_nodes("Payment", [("s", "status", "S", False, (PaymentStatus, names))])
    assert nodes is not None
    assert dict(nodes.enums)["status"] == tuple((m.value, m.name) for m in PaymentStatus)
    other = {member: member.name for member in PaymentKind}
    assert (
        projection.json_nodes("Payment", [("s", "status", "S", False, (PaymentKind, other))])
        is None
    )
    assert projection.json_nodes("Payment", [("s", "status", "String", False, None)]) is None


def test_a_response_key_must_be_a_graphql_name() -> None:
    assert projection.json_nodes("Usage", [("x'y", "id", "ID", False, None)]) is None


def test_json_written_by_postgresql_is_embedded_by_either_encoder() -> None:
    nodes = orjson.Fragment('{"a" : 1, "b" : "\\u0001"}')
    assert dump_json({"n": [nodes]}) == b'{"n":[{"a" : 1, "b" : "\\u0001"}]}'
    # An integer beyond 64 bits sends the response through the standard library's encoder.
    assert json.loads(dump_json({"big": 2**70, "n": [nodes]})) == {
        "big": 2**70,
        "n": [{"a": 1, "b": "\x01"}],
    }
