"""Reads ahead through the app (schema/declare.py `by_id`, `reads_ahead`): an organization's
pages, counts, balance and plan found by id are read in the caller's membership's statement
on PostgreSQL, and nothing read so shows unless the field's own access check allows it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from gateway.db import models
from gateway.services import RolesSeen
from resolvers import api_keys, members
from resolvers.api_keys import insert_api_key
from resolvers.context import Context
from resolvers.pagination import PageArgs
from tests.conftest import Client, Env
from tests.usage.helpers import event, ingest_ok

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

USAGE_BY_MEMBER = """query ($id: ID!) {
  organization(id: $id) {
    members(first: 5) { nodes { id usages(first: 5) { nodes { modelName } } } }
  }
}"""

MEMBER_NODE = """query ($org: ID!, $member: ID!) {
  org: node(id: $org) { id ... on Organization { memberCount } }
  member: node(id: $member) { id ... on Member { role user { id email } } }
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


async def _usage_world(env: Env) -> tuple[Client, Client, str]:
    """An owner and a plain member of an organization, each with a usage record there."""
    owner, org_id, _ = await _organization(env)
    member = await env.member(org_id)
    await ingest_ok(
        env,
        event(owner.user_id, organizationId=org_id, model="owners-model"),
        event(member.user_id, organizationId=org_id, model="members-model"),
    )
    return owner, member, org_id


async def _usage_shown(client: Client, org_id: str) -> list[str]:
    body = await client.gql(USAGE_BY_MEMBER, {"id": org_id})
    assert "errors" not in body, body
    nodes = body["data"]["organization"]["members"]["nodes"]
    return sorted(u["modelName"] for n in nodes if n["usages"] for u in n["usages"]["nodes"])


async def _counted(env: Env, client: Client, org_id: str) -> list[str]:
    with env.counter.counting() as statements:
        await client.gql(USAGE_BY_MEMBER, {"id": org_id})
    return list(statements)


async def test_members_usage_is_read_ahead_as_the_role_last_seen(env: Env) -> None:
    """Whose usage a members page shows depends on the caller's role, unknown when the page
    is read ahead: the read guesses the role this process last read for the caller there
    (here an owner's, read when the usage was recorded). Right, the page goes in the
    membership's statement."""
    owner, _, org_id = await _usage_world(env)
    await owner.gql(USAGE_BY_MEMBER, {"id": org_id})  # the key's last-used stamp
    assert await _usage_shown(owner, org_id) == ["members-model", "owners-model"]
    if env.backend == "postgresql":
        assert len(await _counted(env, owner, org_id)) == 2  # the key's; membership and page


async def test_a_member_not_seen_yet_gets_no_page_ahead_and_then_their_own(env: Env) -> None:
    """A plain member this process has not seen as a member there: no page is read ahead
    (what a guess would read is not theirs to see). Their next request: the role seen
    chooses the page read ahead, which is the field's."""
    _, member, org_id = await _usage_world(env)
    await member.gql("{ viewer { id } }")  # the key's last-used stamp; no membership read
    # As a process that has not seen the member (ingestion read their membership).
    env.state.services.roles_seen = RolesSeen(100)
    first = await _counted(env, member, org_id)
    second = await _counted(env, member, org_id)
    assert await _usage_shown(member, org_id) == ["members-model"]
    if env.backend == "postgresql":
        # The key's; the membership; the member's page; their usage.
        assert len(first) == 4, first
        assert "ORDER BY members.id" not in first[1], first  # the membership alone
        # The key's; the membership and the member's page; their usage.
        assert len(second) == 3, second
        assert not any("node_json" in s and "FROM members" in s for s in first + second)


async def test_a_stranger_makes_no_page_of_usage_be_read(env: Env) -> None:
    _, _, org_id = await _usage_world(env)
    stranger = await env.user()
    with env.counter.counting() as statements:
        body = await stranger.gql(USAGE_BY_MEMBER, {"id": org_id})
    assert body == {"data": {"organization": None}}, body
    assert not any("usage_records" in s for s in statements), statements


async def test_a_role_changed_since_it_was_seen_is_decided_by_the_membership_read(
    env: Env,
) -> None:
    """The role seen is a hint: a member made admin since is shown every member's usage at
    once (in `verify`, the field's page is checked against the one read ahead)."""
    _, member, org_id = await _usage_world(env)
    assert await _usage_shown(member, org_id) == ["members-model"]
    async with env.sessions() as session:
        await session.execute(
            update(models.Member)
            .where(models.Member.user_id == member.user_id)  # type: ignore[arg-type]
            .values(role="admin")
        )
        await session.commit()
    assert await _usage_shown(member, org_id) == ["members-model", "owners-model"]
    assert await _usage_shown(member, org_id) == ["members-model", "owners-model"]


async def _member_node(env: Env, owner: Client, org_id: str, user: Client) -> str:
    """The global id of `user`'s membership of the organization."""
    query = "query ($id: ID!) { organization(id: $id) { members(first: 10) { nodes { id user { id } } } } }"
    nodes = (await owner.gql_data(query, {"id": org_id}))["organization"]["members"]["nodes"]
    return next(n["id"] for n in nodes if n["user"]["id"] == user.user_id)


@pytest.mark.parametrize("read_ahead", ["on", "off"])
async def test_a_member_found_by_id_is_read_with_its_user(env: Env, read_ahead: str) -> None:
    """`node(id:)` of a member: its user is read with it (`Member.user`'s read ahead); with
    the caller's membership read beside them (the organization's node), all in one statement
    after the key's. Off, the user is read after the member is shown."""
    owner, org_id, _ = await _organization(env)
    member = await env.member(org_id)
    variables = {"org": org_id, "member": await _member_node(env, owner, org_id, member)}
    env.settings.read_ahead = read_ahead
    data = await owner.gql_data(MEMBER_NODE, variables)
    assert data["member"]["user"]["id"] == member.user_id
    assert "@" in data["member"]["user"]["email"]
    statements = await _statements(env, owner, MEMBER_NODE, variables)
    if env.backend == "postgresql":
        assert statements == (2 if read_ahead == "on" else 3), statements


@pytest.mark.parametrize("read_ahead", ["verify", "on"])
async def test_verify_fails_a_member_whose_user_read_ahead_did_not_serve_it(
    env: Env, read_ahead: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`Member.user`'s read ahead reads another member than the one shown (the owner's): in
    `verify` the field fails and says so; `on` answers all the same, with a read more."""
    owner, org_id, _ = await _organization(env)
    member = await env.member(org_id)
    variables = {"org": org_id, "member": await _member_node(env, owner, org_id, member)}
    async with env.sessions() as session:
        owners_member = (
            await session.execute(
                select(models.Member.id).where(
                    models.Member.user_id == owner.user_id  # type: ignore[arg-type]
                )
            )
        ).scalar_one()

    def another_member(ctx: Context, member_id: str) -> object:
        return ctx.loaders.member_with_user_by_id.load(owners_member)

    monkeypatch.setattr(members, "member_user_ahead", another_member)
    env.settings.read_ahead = read_ahead
    body = await owner.gql(MEMBER_NODE, variables)
    if read_ahead == "verify" and env.backend == "postgresql":
        assert body["data"]["member"]["user"] is None, body
        assert body["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
        assert body["errors"][0]["path"] == ["member", "user"]
        assert "did not serve it" in caplog.text
    else:
        assert "errors" not in body, body
        assert body["data"]["member"]["user"]["id"] == member.user_id


async def test_a_stranger_is_shown_no_user_read_ahead_for_a_member(env: Env) -> None:
    owner, org_id, _ = await _organization(env)
    member = await env.member(org_id)
    variables = {"org": org_id, "member": await _member_node(env, owner, org_id, member)}
    email = (await owner.gql_data(MEMBER_NODE, variables))["member"]["user"]["email"]
    stranger = await env.user()
    with env.counter.counting() as statements:
        body = await stranger.gql(MEMBER_NODE, variables)
    assert body == {"data": {"org": None, "member": None}}, body
    assert email not in json.dumps(body)
    if env.backend == "postgresql":  # the user was read (ahead), and shown to no one
        assert any("FROM members LEFT OUTER JOIN users" in s for s in statements), statements


async def test_a_deleted_users_member_found_by_id_shows_no_user(env: Env) -> None:
    owner, org_id, _ = await _organization(env)
    member = await env.member(org_id)
    variables = {"org": org_id, "member": await _member_node(env, owner, org_id, member)}
    async with env.sessions() as session:
        await session.execute(
            update(models.User)
            .where(models.User.id == member.user_id)  # type: ignore[arg-type]
            .values(deleted_at=datetime.now(UTC))
        )
        await session.commit()
    data = await owner.gql_data(MEMBER_NODE, variables)
    assert data["member"]["role"] == "MEMBER" and data["member"]["user"] is None
