"""Reads ahead through the app (schema/declare.py `by_id`, `reads_ahead`): an organization's
pages, counts, balance and plan found by id are read in the caller's membership's statement
on PostgreSQL, and nothing read so shows unless the field's own access check allows it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from gateway.db import models
from resolvers import api_keys
from resolvers.api_keys import insert_api_key
from resolvers.pagination import PageArgs
from tests.conftest import Client, Env

pytestmark = pytest.mark.settings(graphql_executor="compiled")

EVERYTHING = """query ($id: ID!) {
  organization(id: $id) {
    id name memberCount
    balance { amount }
    subscription { id }
    members(first: 5) { totalCount nodes { id role user { email } } }
    invites(first: 5) { totalCount nodes { id email } }
    apiKeys(first: 5) { totalCount nodes { id prefix } }
    payments(first: 5) { nodes { id } }
    planHistory(first: 5) { nodes { action } }
    usages(first: 5) { nodes { id } }
  }
}"""
AS_NODE = """query ($id: ID!) {
  node(id: $id) { id ... on Organization { memberCount apiKeys(first: 5) { nodes { prefix } } } }
}"""


async def _organization(env: Env) -> tuple[Client, str, dict[str, str]]:
    """An owner's organization with a member, a pending invite and an organization key; the
    values none but its members may see."""
    owner = await env.user()
    org_id = await env.organization(owner, name="Secret Corp")
    member = await env.member(org_id)
    secret_email = f"secret-{uuid.uuid4().hex[:8]}@invited.example"
    async with env.sessions() as session:
        session.add(
            models.Invite(
                organization_id=org_id,
                email=secret_email,
                role="member",
                token_hash=uuid.uuid4().hex,
                status="pending",
                invited_by_user_id=owner.user_id,
                expires_at=datetime.now(UTC) + timedelta(days=3),
            )
        )
        key, _ = await insert_api_key(
            session, user_id=owner.user_id or "", name="ci", organization_id=org_id
        )
        await session.commit()
    secrets = {
        "organization": org_id,
        "name": "Secret Corp",
        "invite": secret_email,
        "key": key.id,
        "prefix": key.prefix,
        "member": member.user_id or "",
    }
    return owner, org_id, secrets


async def _statements(env: Env, client: Client, query: str, variables: dict[str, str]) -> int:
    await client.gql(query, variables)  # warm up: the API key's last-used stamp
    with env.counter.counting() as statements:
        await client.gql(query, variables)
    return len(statements)


@pytest.mark.parametrize("read_ahead", ["on", "off"])
async def test_an_organizations_fields_are_read_in_the_statement_of_the_callers_membership(
    env: Env, read_ahead: str
) -> None:
    """On PostgreSQL: the key's statement, then one for the membership and every page, count,
    balance and plan below it. Off (and on SQLite, where each read is its own statement),
    the fields below wait for the membership's read."""
    owner, org_id, secrets = await _organization(env)
    env.settings.read_ahead = read_ahead  # read per request
    data = (await owner.gql(EVERYTHING, {"id": org_id}))["data"]["organization"]
    assert data["invites"]["nodes"][0]["email"] == secrets["invite"]
    assert data["apiKeys"]["nodes"][0]["prefix"] == secrets["prefix"]
    assert (data["memberCount"], data["members"]["totalCount"]) == (2, 2)
    statements = await _statements(env, owner, EVERYTHING, {"id": org_id})
    if env.backend == "postgresql":
        assert statements == (2 if read_ahead == "on" else 3), statements
    else:
        assert statements > 3, statements


@pytest.mark.parametrize("query", [EVERYTHING, AS_NODE], ids=["organization", "node"])
async def test_a_stranger_is_shown_nothing_of_what_was_read_ahead(env: Env, query: str) -> None:
    _, org_id, secrets = await _organization(env)
    stranger = await env.user()
    with env.counter.counting() as statements:
        body = await stranger.gql(query, {"id": org_id})
    assert body["data"] in ({"organization": None}, {"node": None}), body
    assert "errors" not in body, body
    text = json.dumps(body)
    assert not [name for name, value in secrets.items() if value in text], text
    if env.backend == "postgresql":  # the keys were read (ahead), and shown to no one
        assert any("FROM api_keys" in s and "organization_id" in s for s in statements)


async def test_a_plain_member_is_refused_the_invites_read_ahead_for_owners(env: Env) -> None:
    _, org_id, secrets = await _organization(env)
    member = await env.member(org_id)
    # Without `usages`, which is not nullable: its refusal would null the organization.
    body = await member.gql(
        EVERYTHING.replace("usages(first: 5) { nodes { id } }", ""), {"id": org_id}
    )
    organization = body["data"]["organization"]
    assert organization["invites"] is None
    assert organization["payments"] is None
    assert organization["apiKeys"]["nodes"][0]["prefix"] == secrets["prefix"]  # members may
    assert secrets["invite"] not in json.dumps(body)
    refused = {tuple(e["path"]): e["extensions"]["code"] for e in body["errors"]}
    assert refused[("organization", "invites")] == "FORBIDDEN"
    assert refused[("organization", "payments")] == "FORBIDDEN"


@pytest.mark.parametrize("read_ahead", ["verify", "on"])
async def test_verify_fails_a_field_whose_read_ahead_did_not_serve_it(
    env: Env, read_ahead: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The field's own read asks for another page than its read ahead did (all columns): in
    `verify` the field fails and says so; `on` answers all the same, with a read more."""
    reading = api_keys.organization_api_keys_ahead

    def another_page(ctx: object, organization_id: str, args: PageArgs) -> object:
        return reading(ctx, organization_id, args._replace(columns=None))  # type: ignore[arg-type]

    monkeypatch.setattr(api_keys, "organization_api_keys_ahead", another_page)
    owner, org_id, secrets = await _organization(env)
    env.settings.read_ahead = read_ahead
    body = await owner.gql(AS_NODE, {"id": org_id})
    if read_ahead == "verify" and env.backend == "postgresql":
        assert body["data"]["node"] is None  # `apiKeys` is not nullable
        assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        assert "the page read ahead for ['node', 'apiKeys'] did not serve it" in caplog.text
    else:
        assert "errors" not in body, body
        assert body["data"]["node"]["apiKeys"]["nodes"][0]["prefix"] == secrets["prefix"]


async def test_a_revoked_key_read_ahead_is_not_listed(env: Env) -> None:
    owner, org_id, secrets = await _organization(env)
    async with env.sessions() as session:
        await session.execute(
            update(models.ApiKey)
            .where(models.ApiKey.id == secrets["key"])  # type: ignore[arg-type]
            .values(revoked_at=datetime.now(UTC))
        )
        await session.commit()
    data = await owner.gql_data(AS_NODE, {"id": org_id})
    assert data["node"]["apiKeys"]["nodes"] == []


@pytest.mark.parametrize("caller", ["anonymous", "service"])
async def test_a_caller_without_a_user_is_refused_before_anything_is_read_ahead(
    env: Env, caller: str
) -> None:
    _, org_id, _ = await _organization(env)
    client = env.anonymous if caller == "anonymous" else env.client(env.settings.service_token)
    with env.counter.counting() as statements:
        body = await client.gql(EVERYTHING, {"id": org_id})
    assert body["data"] is None or body["data"]["organization"] is None, body
    assert {e["extensions"]["code"] for e in body["errors"]} == {"UNAUTHENTICATED"}
    assert statements == [], statements
