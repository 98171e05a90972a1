"""Projection push-down (schema/engine/projection.py): pages read the columns the query selects, and
answer exactly as pages of whole rows do."""

from __future__ import annotations

from typing import Any

import pytest

from schema import build_schema
from schema.engine import projection
from tests.conftest import Env
from tests.usage.helpers import event, ingest_ok

# Every field of each registered type, relations included.
ALL_FIELDS = {
    "Usage": (
        "id generationId providerName modelName modelTypeName operation promptTokens"
        " completionTokens totalTokens costUsd costMicroUsd creditsUsed overdrawn metadata"
        " createdAt userId organizationId user { id } organization { id }"
    ),
    "Member": (
        "id role createdAt updatedAt organizationId userId user { email } organization { name }"
        " usages(first: 2) { nodes { id modelName } }"
    ),
    "Payment": (
        "id status kind amountCents credits currency creatorId failureReason createdAt"
        " updatedAt paidAt providerDetails { provider status }"
    ),
}

CHECKOUT = """
mutation($input: StartCheckoutInput!) { startCheckout(input: $input) { errors { code } } }
"""


async def _world(env: Env) -> tuple[Any, str]:
    """Alice owns an organization Bob is in; both have usage; she paid twice (once declined)."""
    alice = await env.user(name="Alice")
    bob = await env.user(name="Bob")
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob)
    await env.add_member(await env.organization(bob, "Bob's"), alice, role="admin")
    await ingest_ok(
        env,
        event(alice.user_id, organizationId=org_id, operation="web_search", metadata={"n": 1}),
        event(alice.user_id, metadata={"client": "ide", "big": 2**70}, costUsd=0.25),
        event(bob.user_id, organizationId=org_id),
    )
    for cents in (1000, 1002):  # sandbox: cents ending in 02 are declined
        await alice.gql_data(CHECKOUT, {"input": {"amountCents": cents}})
    await alice.gql_data(CHECKOUT, {"input": {"amountCents": 1500, "organizationId": org_id}})
    return alice, org_id


def _usage_statements(statements: list[str]) -> list[str]:
    """The statements reading usage rows by columns; on PostgreSQL the compiled executor's
    page reads its nodes as JSON instead (tests/engine/test_json_nodes.py), and the suite's `verify`
    mode runs the standard executor's as well."""
    return [
        s
        for s in statements
        if ("FROM usage_records" in s or "usage_records." in s) and "AS node_json" not in s
    ]


@pytest.mark.parametrize("type_name", sorted(ALL_FIELDS))
def test_every_field_of_a_registered_type_says_which_columns_it_reads(type_name: str) -> None:
    graphql_type = build_schema()._schema.get_type(type_name)
    registered = projection.registered(type_name)
    assert graphql_type is not None and registered is not None
    assert set(graphql_type.fields) == set(registered.fields)  # type: ignore[attr-defined]


PAGES = {
    "Usage": [
        "query($u: ID!) { user(id: $u) { usages(first: 10) { nodes { %s } } } }",
        "query($o: ID!) { organization(id: $o) { members(first: 5) { nodes { usages(first: 10)"
        " { nodes { %s } } } } } }",
        "query($o: ID!) { organization(id: $o) { usages(first: 10) { nodes { %s } } } }",
        "query($u: ID!) { user(id: $u) { usages(first: 10) { edges { cursor node { %s } } } } }",
    ],
    "Member": [
        "query($o: ID!) { organization(id: $o) { members(first: 10) { nodes { %s } } } }",
        "query($o: ID!) { organization(id: $o) { members(last: 1) { edges { node { %s } } } } }",
        # several organizations' pages in one statement
        "query($u: ID!) { user(id: $u) { organizations { organization { members(first: 10)"
        " { nodes { %s } } } } } }",
    ],
    "Payment": [
        "query($u: ID!) { user(id: $u) { payments(first: 10) { nodes { %s } } } }",
        "query($o: ID!) { organization(id: $o) { payments(first: 10) { nodes { %s } } } }",
    ],
}
# The ways a selection can reach a connection's nodes: `{f}` is the fields, `{t}` the type.
SHAPES = [
    "first: {f}",  # an alias on the first field
    "... on {t} {{ {f} }}",
    "... on Node {{ id ... on {t} {{ {f} }} }}",
    "... @include(if: $no) {{ {f} }}",
    "...Fields",
]


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for type_name, pages in PAGES.items():
        for page in pages:
            for fields in (ALL_FIELDS[type_name], "id", "__typename id createdAt"):
                cases.append((type_name, page, fields))
        for shape in SHAPES:
            cases.append((type_name, pages[0], shape.format(f=ALL_FIELDS[type_name], t=type_name)))
    return cases


@pytest.mark.parametrize(("type_name", "page", "fields"), _cases())
async def test_a_projected_page_answers_as_a_page_of_whole_rows(
    env: Env, monkeypatch: pytest.MonkeyPatch, type_name: str, page: str, fields: str
) -> None:
    alice, org_id = await _world(env)
    text = page % fields
    if "$no" in fields:
        text = text.replace("query(", "query($no: Boolean!, ", 1)
    if "...Fields" in fields:
        text += f" fragment Fields on {type_name} {{ {ALL_FIELDS[type_name]} }}"
    variables = {"u": alice.user_id, "o": org_id, "no": False}
    projected = await alice.gql(text, variables)
    # No type declared (schema/declare.py): whole rows, nor read as JSON.
    monkeypatch.setattr(projection, "NODE_TYPES", {})
    monkeypatch.setattr(projection, "_CACHE", {})
    whole = await alice.gql(text, variables)
    assert "errors" not in projected, projected
    assert projected == whole
    assert repr(projected) == repr(whole)  # ints stay ints (metadata's 2**70)


async def _usage_columns_read(env: Env, client: Any, fields: str) -> str:
    """The select list of the statement that reads the client's usage page for `fields`."""
    with env.counter.counting() as statements:
        await client.gql_data(
            f"query($u: ID!) {{ user(id: $u) {{ usages(first: 10) {{ nodes {{ {fields} }} }} }} }}",
            {"u": client.user_id},
        )
    (statement,) = _usage_statements(statements)
    return statement.split(" FROM ")[0]


async def test_a_page_reads_only_the_columns_the_query_selects(env: Env) -> None:
    alice, _ = await _world(env)
    selected = await _usage_columns_read(env, alice, "modelName")
    assert "model_name" in selected and "user_id" in selected
    for unread in ("metadata", "generation_id", "created_at", "cost_micro_usd"):
        assert unread not in selected
    assert "metadata" in await _usage_columns_read(env, alice, "metadata")


async def test_a_members_page_reads_their_users_in_its_statement_when_shown(env: Env) -> None:
    alice, org_id = await _world(env)
    query = "query($o: ID!) { organization(id: $o) { members(first: 10) { nodes { %s } } } }"
    with env.counter.counting() as statements:
        data = await alice.gql_data(query % "role user { email }", {"o": org_id})
    users = [n["user"]["email"] for n in data["organization"]["members"]["nodes"]]
    assert len(users) == 2 and all(users)
    # Joined to the page (objects), or inside its JSON (PostgreSQL, compiled executor; `verify`
    # runs both).
    pages = [s for s in statements if "FROM members" in s and "ORDER BY" in s]
    assert pages and all("JOIN users" in p or "JOIN users AS _json_1" in p for p in pages)
    assert not [s for s in statements if "FROM users" in s and "members" not in s]
    with env.counter.counting() as statements:
        await alice.gql_data(query % "role", {"o": org_id})
    pages = [s for s in statements if "FROM members" in s and "ORDER BY" in s]
    assert pages and not [p for p in pages if "users" in p]


async def test_a_field_the_type_did_not_register_reads_whole_rows(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, _ = await _world(env)
    usage = projection.registered("Usage")
    assert usage is not None
    fields = {k: v for k, v in usage.fields.items() if k != "modelName"}
    declared, _, json = projection._derived("Usage")  # type: ignore[misc]
    monkeypatch.setitem(
        projection._DERIVED,
        "Usage",
        (declared, projection.RowColumns(fields, usage.always, usage.related), json),
    )
    monkeypatch.setattr(projection, "_CACHE", {})
    assert "metadata" in await _usage_columns_read(env, alice, "modelName")


async def test_rest_usage_pages_read_whole_rows(env: Env) -> None:
    alice, _ = await _world(env)
    response = await alice.get(f"/users/{alice.user_id}/usages")
    items = response.json()["data"]["items"]
    assert {item["generationId"][:4] for item in items} == {"gen_"}
    assert {repr(item["metadata"]) for item in items} == {
        repr({"n": 1}),
        repr({"client": "ide", "big": 2**70}),
    }
