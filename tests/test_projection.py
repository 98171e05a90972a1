"""Projection push-down (schema/projection.py): pages read the columns the query selects, and
answer exactly as pages of whole rows do."""

from __future__ import annotations

from typing import Any

import pytest

from schema import build_schema, projection
from tests.conftest import Env
from tests.test_usage_helpers import event, ingest_ok

# Every Usage field, relations included.
ALL_USAGE_FIELDS = (
    "id generationId providerName modelName modelTypeName operation promptTokens"
    " completionTokens totalTokens costUsd costMicroUsd creditsUsed overdrawn metadata"
    " createdAt userId organizationId user { id } organization { id }"
)


async def _with_usage(env: Env) -> tuple[Any, str]:
    alice = await env.user(name="Alice")
    org_id = await env.organization(alice)
    await ingest_ok(
        env,
        event(alice.user_id, organizationId=org_id, operation="web_search", metadata={"n": 1}),
        event(alice.user_id, metadata={"client": "ide", "big": 2**70}, costUsd=0.25),
    )
    return alice, org_id


def _usage_statements(statements: list[str]) -> list[str]:
    return [s for s in statements if "FROM usage_records" in s or "usage_records." in s]


def test_every_usage_field_says_which_columns_it_reads() -> None:
    usage_type = build_schema()._schema.get_type("Usage")
    registered = projection.registered("Usage")
    assert usage_type is not None and registered is not None
    assert "modelName" in usage_type.fields  # type: ignore[attr-defined]
    assert set(usage_type.fields) == set(registered.fields)  # type: ignore[attr-defined]


QUERIES = [
    # every field, through each kind of page (one parent, several parents, the organization)
    "query($u: ID!) { user(id: $u) { usages(first: 10) { nodes { %s } } } }",
    "query($o: ID!) { organization(id: $o) { members(first: 5) { nodes { usages(first: 10)"
    " { nodes { %s } } } } } }",
    "query($o: ID!) { organization(id: $o) { usages(first: 10) { nodes { %s } } } }",
    # edges, fragments, inline fragments, aliases, directives
    "query($u: ID!) { user(id: $u) { usages(first: 10) { edges { cursor node { m: %s } } } } }",
    "query($u: ID!) { user(id: $u) { usages(first: 10) { ...Page } } }"
    " fragment Page on UsageConnection { nodes { ...Fields } pageInfo { endCursor } }"
    " fragment Fields on Usage { %s }",
    "query($u: ID!) { user(id: $u) { usages(first: 10) { nodes { ... on Usage { %s } } } } }",
    "query($u: ID!, $no: Boolean = false) { user(id: $u) { usages(first: 10) { nodes { id"
    " ... @include(if: $no) { %s } } } } }",
]


@pytest.mark.parametrize(
    "fields",
    [
        ALL_USAGE_FIELDS,
        "modelName createdAt",
        "metadata",
        "costUsd",
        "__typename id",
        "user { email } organization { name }",
    ],
)
@pytest.mark.parametrize("query", QUERIES)
async def test_a_projected_page_answers_as_a_page_of_whole_rows(
    env: Env, monkeypatch: pytest.MonkeyPatch, query: str, fields: str
) -> None:
    alice, org_id = await _with_usage(env)
    text = query % fields
    variables = {"u": alice.user_id, "o": org_id}
    projected = await alice.gql(text, variables)
    monkeypatch.setattr(projection, "_TYPES", {})  # no type registered: whole rows
    monkeypatch.setattr(projection, "_CACHE", {})
    whole = await alice.gql(text, variables)
    assert "errors" not in projected, projected
    assert projected == whole


async def test_a_page_reads_only_the_columns_the_query_selects(env: Env) -> None:
    alice, _ = await _with_usage(env)
    with env.counter.counting() as statements:
        data = await alice.gql_data(
            "query($u: ID!) { user(id: $u) { usages(first: 10) { nodes { modelName } } } }",
            {"u": alice.user_id},
        )
    assert [n["modelName"] for n in data["user"]["usages"]["nodes"]] == ["gpt-4o", "gpt-4o"]
    (statement,) = _usage_statements(statements)
    selected = statement.split(" FROM ")[0]
    assert "model_name" in selected and "user_id" in selected
    for unread in ("metadata", "generation_id", "created_at", "cost_micro_usd"):
        assert unread not in selected
    with env.counter.counting() as statements:
        await alice.gql_data(
            "query($u: ID!) { user(id: $u) { usages(first: 10) { nodes { metadata } } } }",
            {"u": alice.user_id},
        )
    (statement,) = _usage_statements(statements)
    assert "metadata" in statement.split(" FROM ")[0]


async def test_a_field_the_type_did_not_register_reads_whole_rows(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, _ = await _with_usage(env)
    usage = projection.registered("Usage")
    assert usage is not None
    fields = {k: v for k, v in usage.fields.items() if k != "modelName"}
    monkeypatch.setitem(projection._TYPES, "Usage", projection.RowColumns(fields, usage.always))
    monkeypatch.setattr(projection, "_CACHE", {})
    with env.counter.counting() as statements:
        await alice.gql_data(
            "query($u: ID!) { user(id: $u) { usages(first: 10) { nodes { modelName } } } }",
            {"u": alice.user_id},
        )
    (statement,) = _usage_statements(statements)
    assert "metadata" in statement.split(" FROM ")[0]


async def test_rest_usage_pages_read_whole_rows(env: Env) -> None:
    alice, _ = await _with_usage(env)
    response = await alice.get(f"/users/{alice.user_id}/usages")
    items = response.json()["data"]["items"]
    assert {item["generationId"][:4] for item in items} == {"gen_"}
    assert {repr(item["metadata"]) for item in items} == {
        repr({"n": 1}),
        repr({"client": "ide", "big": 2**70}),
    }
