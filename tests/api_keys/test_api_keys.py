"""API keys: create (secret once), list, revoke, organization keys; REST and GraphQL."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from gateway.db import models
from tests.conftest import Client, Env
from tests.envelopes import assert_refused, data_of

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
KEY_ID = re.compile(r"^key-[0-9A-HJKMNP-TV-Z]{26}$")
ITEM_FIELDS = {"id", "name", "prefix", "organizationId", "createdAt", "lastUsedAt", "expiresAt"}

CREATE = """
mutation($input: CreateApiKeyInput!) {
  createApiKey(input: $input) {
    errors { code message field }
    key
    apiKey { id name prefix organizationId createdAt lastUsedAt expiresAt }
  }
}"""
DELETE = """
mutation($id: ID!) {
  deleteApiKey(input: {id: $id}) { errors { code message field } deletedApiKeyId }
}"""
VIEWER_KEYS = """
{ viewer { apiKeys(first: 50) {
    nodes { id name prefix organizationId createdAt lastUsedAt expiresAt }
    pageInfo { hasNextPage endCursor } } } }"""


def in_future(days: int = 30) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def create_key(client: Client, **body: Any) -> dict[str, Any]:
    response = await client.post("/api-keys", json={"name": "ci", **body})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


# --- REST: create ---------------------------------------------------------------------------


async def test_create_api_key_answers_201_with_the_item_and_the_secret(env: Env) -> None:
    alice = await env.user()
    response = await alice.post("/api-keys", json={"name": "  laptop  "})
    data = data_of(response, 201)
    assert set(data) == ITEM_FIELDS | {"key"}
    assert KEY_ID.match(data["id"])
    assert data["name"] == "laptop"
    assert data["key"].startswith("gwk_")
    assert data["prefix"] == data["key"][:12]
    assert data["organizationId"] is None
    assert TS.match(data["createdAt"])
    assert data["lastUsedAt"] is None
    assert data["expiresAt"] is None


async def test_created_key_authenticates_the_caller(env: Env) -> None:
    alice = await env.user()
    created = await create_key(alice)
    response = await env.client(created["key"]).get("/users/me")
    assert response.status_code == 200
    assert response.json()["data"]["id"] == alice.user_id


async def test_secret_is_stored_only_hashed(env: Env) -> None:
    alice = await env.user()
    created = await create_key(alice)
    row = await env.scalar(select(models.ApiKey).where(models.ApiKey.id == created["id"]))
    assert created["key"] not in (row.secret_hash, row.lookup, row.prefix)


async def test_create_api_key_with_future_expiry_keeps_it(env: Env) -> None:
    alice = await env.user()
    expires = in_future()
    created = await create_key(alice, expiresAt=expires)
    assert created["expiresAt"] == expires


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
async def test_create_api_key_rejects_a_bad_name(env: Env, name: str) -> None:
    alice = await env.user()
    response = await alice.post("/api-keys", json={"name": name})
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert "name" in response.json()["error"]


async def test_create_api_key_requires_a_name(env: Env) -> None:
    alice = await env.user()
    response = await alice.post("/api-keys", json={})
    assert response.status_code == 400
    assert "name" in response.json()["error"]


async def test_create_api_key_rejects_an_expiry_in_the_past(env: Env) -> None:
    alice = await env.user()
    response = await alice.post("/api-keys", json={"name": "old", "expiresAt": in_future(-1)})
    assert_refused(response, 400, "expiresAt must be in the future")
    assert len(await env.all(select(models.ApiKey))) == 1  # only the fixture's key


async def test_create_api_key_rejects_an_expiry_without_timezone(env: Env) -> None:
    alice = await env.user()
    response = await alice.post("/api-keys", json={"name": "n", "expiresAt": "2999-01-01T00:00:00"})
    assert response.status_code == 400
    assert "expiresAt" in response.json()["error"]


async def test_create_api_key_needs_authentication(env: Env) -> None:
    response = await env.anonymous.post("/api-keys", json={"name": "x"})
    assert_refused(response, 401, "Authentication required")


async def test_expired_key_stops_working(env: Env) -> None:
    alice = await env.user()
    created = await create_key(alice, expiresAt=in_future())
    async with env.sessions() as session:
        await session.execute(
            update(models.ApiKey)
            .where(models.ApiKey.id == created["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    response = await env.client(created["key"]).get("/users/me")
    assert_refused(response, 401, "API key expired")


# --- REST: organization keys ----------------------------------------------------------------


async def test_owner_creates_an_organization_key(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    created = await create_key(alice, organizationId=org_id)
    assert created["organizationId"] == org_id


async def test_admin_creates_an_organization_key(env: Env) -> None:
    org_id = await env.organization(await env.user())
    bob = await env.member(org_id, "admin")
    created = await create_key(bob, organizationId=org_id)
    assert created["organizationId"] == org_id


async def test_member_may_not_create_an_organization_key(env: Env) -> None:
    org_id = await env.organization(await env.user())
    bob = await env.member(org_id, "member")
    response = await bob.post("/api-keys", json={"name": "k", "organizationId": org_id})
    assert_refused(response, 403, "Only organization owners and admins can do this")


async def test_stranger_organization_key_is_404(env: Env) -> None:
    alice, eve = await env.user(), await env.user()
    org_id = await env.organization(alice)
    response = await eve.post("/api-keys", json={"name": "k", "organizationId": org_id})
    assert_refused(response, 404, "Organization not found")


async def test_organization_key_reaches_only_its_organization(env: Env) -> None:
    alice = await env.user()
    acme = await env.organization(alice, "Acme")
    other = await env.organization(alice, "Other")
    org_key = env.client((await create_key(alice, organizationId=acme))["key"])
    assert (await org_key.get(f"/organizations/{acme}/api-keys")).status_code == 200
    assert (await org_key.get(f"/organizations/{other}/api-keys")).status_code == 404


@pytest.mark.settings(provider_api_keys='{"litellm": "sk-provider"}')
async def test_organization_api_keys_route_shape(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    bob = await env.member(org_id, "member")
    org_key = await create_key(alice, organizationId=org_id, name="shared")
    await create_key(alice, name="personal")
    response = await bob.get(f"/organizations/{org_id}/api-keys")
    data = data_of(response)
    assert set(data) == {"providerApiKeys", "items", "nextCursor"}
    assert isinstance(data["providerApiKeys"], str)
    assert data["providerApiKeys"] == '{"litellm":"sk-provider"}'
    assert data["nextCursor"] is None
    assert [item["id"] for item in data["items"]] == [org_key["id"]]
    assert set(data["items"][0]) == ITEM_FIELDS


async def test_provider_api_keys_default_to_an_empty_object_string(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    data = (await alice.get(f"/organizations/{org_id}/api-keys")).json()["data"]
    assert data == {"providerApiKeys": "{}", "items": [], "nextCursor": None}


@pytest.mark.settings(provider_api_keys='{"litellm": "sk-provider", "openai": "sk-\\u00e9"}')
async def test_graphql_provider_api_keys_equal_the_route(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    bob = await env.member(org_id, "member")
    rest = data_of(await bob.get(f"/organizations/{org_id}/api-keys"))["providerApiKeys"]
    query = "query($id: ID!) { organization(id: $id) { providerApiKeys } }"
    gql = (await bob.gql_data(query, {"id": org_id}))["organization"]["providerApiKeys"]
    assert gql == rest
    assert json.loads(gql) == {"litellm": "sk-provider", "openai": "sk-\u00e9"}


@pytest.mark.settings(provider_api_keys='{"litellm": "sk-provider"}')
async def test_graphql_provider_api_keys_are_not_shown_to_a_stranger(env: Env) -> None:
    alice, eve = await env.user(), await env.user()
    org_id = await env.organization(alice)
    query = "query($id: ID!) { organization(id: $id) { providerApiKeys } }"
    assert (await eve.gql_data(query, {"id": org_id}))["organization"] is None


async def test_organization_api_keys_of_a_stranger_is_404(env: Env) -> None:
    alice, eve = await env.user(), await env.user()
    org_id = await env.organization(alice)
    response = await eve.get(f"/organizations/{org_id}/api-keys")
    assert_refused(response, 404, "Organization not found")


# --- REST: list -----------------------------------------------------------------------------


async def test_list_api_keys_shape_never_shows_secrets(env: Env) -> None:
    alice = await env.user()
    created = await create_key(alice, name="second")
    response = await alice.get("/api-keys")
    data = data_of(response)
    assert set(data) == {"items", "nextCursor"}
    assert data["nextCursor"] is None
    assert {item["name"] for item in data["items"]} == {"test", "second"}
    for item in data["items"]:
        assert set(item) == ITEM_FIELDS
        assert created["key"] not in str(item)
    # The fixture's key has authenticated this very request.
    fixture_key = next(i for i in data["items"] if i["name"] == "test")
    assert TS.match(fixture_key["lastUsedAt"])


async def test_list_api_keys_shows_only_the_callers_keys(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    await create_key(bob, name="bobs")
    items = (await alice.get("/api-keys")).json()["data"]["items"]
    assert [item["name"] for item in items] == ["test"]


async def test_list_api_keys_pages_with_limit_and_cursor(env: Env) -> None:
    alice = await env.user()
    for i in range(4):
        await create_key(alice, name=f"k{i}")
    first = (await alice.get("/api-keys?limit=3")).json()["data"]
    assert len(first["items"]) == 3
    assert first["nextCursor"]
    second = (await alice.get(f"/api-keys?limit=3&cursor={first['nextCursor']}")).json()["data"]
    assert len(second["items"]) == 2
    assert second["nextCursor"] is None
    ids = [i["id"] for i in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert len(set(ids)) == 5


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=abc"])
async def test_list_api_keys_rejects_a_bad_limit(env: Env, query: str) -> None:
    alice = await env.user()
    response = await alice.get(f"/api-keys?{query}")
    assert response.status_code == 400
    assert "limit" in response.json()["error"]


async def test_list_api_keys_rejects_a_bad_cursor(env: Env) -> None:
    alice = await env.user()
    response = await alice.get("/api-keys?cursor=garbage")
    assert_refused(response, 400, "Invalid cursor")


# --- REST: delete ---------------------------------------------------------------------------


async def test_delete_api_key_answers_204_and_the_key_stops_working_at_once(env: Env) -> None:
    alice = await env.user()
    created = await create_key(alice)
    doomed = env.client(created["key"])
    assert (await doomed.get("/users/me")).status_code == 200
    response = await alice.delete(f"/api-keys/{created['id']}")
    assert response.status_code == 204
    assert response.content == b""
    refused = await doomed.get("/users/me")
    assert_refused(refused, 401, "API key revoked")
    names = [i["name"] for i in (await alice.get("/api-keys")).json()["data"]["items"]]
    assert names == ["test"]


async def test_a_key_may_revoke_itself(env: Env) -> None:
    alice = await env.user()
    key_id = (await alice.get("/api-keys")).json()["data"]["items"][0]["id"]
    assert (await alice.delete(f"/api-keys/{key_id}")).status_code == 204
    assert (await alice.get("/users/me")).status_code == 401


async def test_delete_another_users_key_is_404_and_keeps_it(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    bobs = await create_key(bob)
    response = await alice.delete(f"/api-keys/{bobs['id']}")
    assert_refused(response, 404, "API key not found")
    assert (await env.client(bobs["key"]).get("/users/me")).status_code == 200


async def test_delete_a_revoked_key_again_is_404(env: Env) -> None:
    alice = await env.user()
    created = await create_key(alice)
    assert (await alice.delete(f"/api-keys/{created['id']}")).status_code == 204
    assert (await alice.delete(f"/api-keys/{created['id']}")).status_code == 404


async def test_delete_an_unknown_key_is_404(env: Env) -> None:
    alice = await env.user()
    response = await alice.delete("/api-keys/key-01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert response.status_code == 404


# --- GraphQL --------------------------------------------------------------------------------


async def test_create_api_key_mutation_returns_the_secret_once(env: Env) -> None:
    alice = await env.user()
    payload = (await alice.gql_data(CREATE, {"input": {"name": "gql"}}))["createApiKey"]
    assert payload["errors"] == []
    assert payload["key"].startswith("gwk_")
    assert payload["apiKey"]["name"] == "gql"
    assert payload["apiKey"]["prefix"] == payload["key"][:12]
    assert TS.match(payload["apiKey"]["createdAt"])
    viewer = await env.client(payload["key"]).gql_data("{ viewer { id } }")
    assert viewer["viewer"]["id"] == alice.user_id


async def test_create_api_key_mutation_reports_validation_errors(env: Env) -> None:
    alice = await env.user()
    payload = (await alice.gql_data(CREATE, {"input": {"name": " "}}))["createApiKey"]
    assert payload == {
        "errors": [
            {"code": "VALIDATION_FAILED", "message": "name must not be empty", "field": "name"}
        ],
        "key": None,
        "apiKey": None,
    }


async def test_create_api_key_mutation_refuses_a_past_expiry(env: Env) -> None:
    alice = await env.user()
    variables = {"input": {"name": "x", "expiresAt": in_future(-2)}}
    payload = (await alice.gql_data(CREATE, variables))["createApiKey"]
    assert payload["errors"][0]["field"] == "expiresAt"
    assert payload["key"] is None


async def test_create_api_key_mutation_forbids_org_keys_to_members(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob)
    variables = {"input": {"name": "x", "organizationId": org_id}}
    payload = (await bob.gql_data(CREATE, variables))["createApiKey"]
    assert payload["errors"][0]["code"] == "FORBIDDEN"
    assert len(await env.all(select(models.ApiKey))) == 2  # the two fixture keys only


async def test_delete_api_key_mutation_revokes_at_once(env: Env) -> None:
    alice = await env.user()
    created = await create_key(alice)
    payload = (await alice.gql_data(DELETE, {"id": created["id"]}))["deleteApiKey"]
    assert payload == {"errors": [], "deletedApiKeyId": created["id"]}
    body = await env.client(created["key"]).gql("{ viewer { id } }")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_delete_api_key_mutation_on_another_users_key_is_not_found(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    bobs = await create_key(bob)
    payload = (await alice.gql_data(DELETE, {"id": bobs["id"]}))["deleteApiKey"]
    assert payload["errors"] == [
        {"code": "NOT_FOUND", "message": "API key not found", "field": None}
    ]
    assert payload["deletedApiKeyId"] is None


async def test_viewer_api_keys_equal_the_rest_list(env: Env) -> None:
    alice = await env.user()
    await create_key(alice, name="a", expiresAt=in_future())
    org_id = await env.organization(alice)
    await create_key(alice, name="b", organizationId=org_id)
    rest_items = (await alice.get("/api-keys")).json()["data"]["items"]
    connection = (await alice.gql_data(VIEWER_KEYS))["viewer"]["apiKeys"]
    assert connection["nodes"] == rest_items
    assert connection["pageInfo"]["hasNextPage"] is False


async def test_other_users_api_keys_are_null(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob)
    data = await alice.gql_data(
        "query($id: ID!) { user(id: $id) { id apiKeys { nodes { id } } } }", {"id": bob.user_id}
    )
    assert data["user"] == {"id": bob.user_id, "apiKeys": None}


async def test_organization_api_keys_are_visible_to_members(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob)
    org_key = await create_key(alice, organizationId=org_id)
    await create_key(alice, name="personal")
    data = await bob.gql_data(
        "query($id: ID!) { organization(id: $id) { apiKeys { nodes { id organizationId } } } }",
        {"id": org_id},
    )
    assert data["organization"]["apiKeys"]["nodes"] == [
        {"id": org_key["id"], "organizationId": org_id}
    ]


async def test_node_resolves_own_and_organization_keys_only(env: Env) -> None:
    alice, bob, eve = await env.user(), await env.user(), await env.user()
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob)
    personal = await create_key(alice, name="personal")
    shared = await create_key(alice, name="shared", organizationId=org_id)
    query = "query($id: ID!) { node(id: $id) { ... on ApiKey { id name } } }"
    assert (await alice.gql_data(query, {"id": personal["id"]}))["node"]["name"] == "personal"
    assert (await bob.gql_data(query, {"id": shared["id"]}))["node"]["name"] == "shared"
    assert (await bob.gql_data(query, {"id": personal["id"]}))["node"] is None
    assert (await eve.gql_data(query, {"id": shared["id"]}))["node"] is None


async def test_organization_api_keys_cost_one_query_per_level(env: Env) -> None:
    alice = await env.user()
    query = """{ viewer { organizations { organization { apiKeys { nodes { id } } } } } }"""

    async def statements() -> int:
        with env.counter.counting() as seen:
            await alice.gql_data(query)
        return len(seen)

    org_id = await env.organization(alice, "One")
    await create_key(alice, organizationId=org_id)
    one = await statements()
    for name in ("Two", "Three", "Four"):
        other = await env.organization(alice, name)
        await create_key(alice, organizationId=other)
    assert await statements() == one


# --- organization keys reach no further than their organization -----------------------------


async def org_key_client(env: Env, owner: Client, org_id: str) -> Client:
    created = await create_key(owner, organizationId=org_id, name="org")
    return env.client(created["key"], owner.user_id)


async def test_organization_key_cannot_mint_a_personal_key(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    scoped = await org_key_client(env, alice, org_id)
    response = await scoped.post("/api-keys", json={"name": "escape"})
    assert_refused(
        response, 403, "An organization API key can only create keys for its organization"
    )
    assert (
        await scoped.post("/api-keys", json={"name": "ok", "organizationId": org_id})
    ).status_code == 201


async def test_organization_key_lists_and_revokes_only_its_organizations_keys(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    scoped = await org_key_client(env, alice, org_id)
    items = (await scoped.get("/api-keys")).json()["data"]["items"]
    assert [item["organizationId"] for item in items] == [org_id]
    personal_id = next(
        i["id"]
        for i in (await alice.get("/api-keys")).json()["data"]["items"]
        if i["name"] == "test"
    )
    assert (await scoped.delete(f"/api-keys/{personal_id}")).status_code == 404
    assert (await alice.get("/users/me")).status_code == 200
    nodes = (await scoped.gql_data(VIEWER_KEYS))["viewer"]["apiKeys"]["nodes"]
    assert [n["organizationId"] for n in nodes] == [org_id]


async def test_organization_key_cannot_use_the_personal_account(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    scoped = await org_key_client(env, alice, org_id)
    for path in (f"/users/{alice.user_id}/balance", f"/users/{alice.user_id}/payments"):
        response = await scoped.get(path)
        assert response.status_code == 403, path
        assert response.json()["success"] is False
    checkout = await scoped.post("/users/credits/checkout", json={"amountCents": 1000})
    assert checkout.status_code == 403
    assert (await scoped.get("/users/me")).status_code == 200
    assert (await scoped.get(f"/organizations/{org_id}/balance")).status_code == 200


@pytest.mark.parametrize(
    "field",
    [
        "balance { amount }",
        "billingAccount { id }",
        "payments(first: 5) { nodes { id } }",
        "usages(first: 5) { nodes { id } }",
        "subscription { id }",
    ],
)
async def test_organization_key_cannot_read_the_personal_account_in_graphql(
    env: Env, field: str
) -> None:
    """GraphQL's own-only fields refuse an organization key as REST's /users/{id}/… do."""
    alice = await env.user()
    org_id = await env.organization(alice)
    scoped = await org_key_client(env, alice, org_id)
    body = await scoped.gql(f"{{ viewer {{ id {field} }} }}")
    name = field.split("(")[0].split(" ")[0]
    assert body["data"] == {"viewer": {"id": alice.user_id, name: None}}
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    assert [e["path"] for e in body["errors"]] == [["viewer", name]]
    own = await alice.gql(f"{{ viewer {{ id {field} }} }}")
    assert "errors" not in own


async def test_api_key_total_counts_live_keys_over_every_page(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob)
    await create_key(alice, name="a")
    revoked = await create_key(alice, name="b")
    await create_key(alice, name="c", organizationId=org_id)
    assert (await alice.gql_data(DELETE, {"id": revoked["id"]}))["deleteApiKey"]["errors"] == []
    data = await alice.gql_data("{ viewer { apiKeys(first: 1) { totalCount nodes { id } } } }")
    # The client's own key ("test"), "a" and the organization's "c"; "b" is revoked.
    assert data["viewer"]["apiKeys"]["totalCount"] == 3
    assert len(data["viewer"]["apiKeys"]["nodes"]) == 1
    query = "query($id: ID!) { organization(id: $id) { apiKeys { totalCount } } }"
    assert (await bob.gql_data(query, {"id": org_id}))["organization"]["apiKeys"] == {
        "totalCount": 1
    }


async def test_an_organization_keys_total_counts_only_its_organizations_keys(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    await create_key(alice, name="personal")
    scoped = await org_key_client(env, alice, org_id)
    data = await scoped.gql_data("{ viewer { apiKeys { totalCount nodes { organizationId } } } }")
    assert data["viewer"]["apiKeys"] == {"totalCount": 1, "nodes": [{"organizationId": org_id}]}
