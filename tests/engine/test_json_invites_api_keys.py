"""Invite and ApiKey pages (declared with their models, schema/invite.py and api_key.py)
written as JSON by PostgreSQL answer exactly as the objects do: the same bytes as the standard
executor's, with `invitedBy` inside (null for a deleted inviter), escapes, every role and null
timestamps. Fields the JSON cannot hold exactly keep the objects.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from gateway.db import models
from resolvers.api_keys import insert_api_key
from tests.conftest import Client, Env
from tests.engine.helpers import both, delete_user, read_as_json, standard_app, users_read

pytestmark = pytest.mark.settings(graphql_executor="compiled")

AWKWARD = 'Bob "the \\ builder" é 😀\t</script>'
INVITES = "query($o: ID!) { organization(id: $o) { invites(first: 20) { nodes { %s } } } }"
INVITE_NODES = (
    "__typename id email role status createdAt expiresAt invitedBy { __typename id email"
    " displayName }"
)
ORGANIZATION_KEYS = (
    "query($o: ID!) { organization(id: $o) { apiKeys(first: 20) { nodes { %s } } } }"
)
VIEWER_KEYS = "{ viewer { apiKeys(first: 20) { nodes { %s } } } }"
KEY_NODES = "__typename id name prefix createdAt lastUsedAt expiresAt"


@pytest.fixture
async def standard(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    async with standard_app(env) as http:
        yield http


async def _invites(env: Env) -> tuple[Client, str, Client]:
    """Alice owns an organization; she and Bob (an awkward name, an admin) invited people
    with each role and awkward emails; an accepted and a revoked invite are not listed."""
    alice = await env.user(name="Alice")
    bob = await env.user(name=AWKWARD)
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob, "admin")
    stamp = datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    statuses = ["pending"] * 6 + ["accepted", "revoked"]
    async with env.sessions() as session:
        for i, status in enumerate(statuses):
            session.add(
                models.Invite(
                    organization_id=org_id,
                    email=f'x{i}"\\\n</script>😀@example.com',
                    role=("owner", "admin", "member")[i % 3],
                    token_hash=uuid.uuid4().hex,
                    status=status,
                    invited_by_user_id=(alice, bob)[i % 2].user_id,
                    expires_at=stamp if i == 0 else datetime.now(UTC) + timedelta(days=i),
                )
            )
        await session.commit()
    return alice, org_id, bob


async def test_invite_nodes_with_their_inviters_are_one_statement_of_json(
    env: Env, standard: httpx.AsyncClient
) -> None:
    alice, org_id, _ = await _invites(env)
    body, statements = await both(env, standard, alice, INVITES % INVITE_NODES, {"o": org_id})
    nodes = body["data"]["organization"]["invites"]["nodes"]
    assert len(nodes) == 6 and {n["status"] for n in nodes} == {"PENDING"}
    assert {n["role"] for n in nodes} == {"OWNER", "ADMIN", "MEMBER"}
    assert AWKWARD in {n["invitedBy"]["displayName"] for n in nodes}
    assert "0999-12-31T23:59:59.999999Z" in {n["expiresAt"] for n in nodes}
    postgresql = env.backend == "postgresql"
    assert read_as_json(statements) == postgresql
    assert users_read(statements) == (0 if postgresql else 1)


async def test_a_deleted_inviter_is_null_as_in_the_objects(
    env: Env, standard: httpx.AsyncClient
) -> None:
    alice, org_id, bob = await _invites(env)
    await delete_user(env, bob)
    body, statements = await both(env, standard, alice, INVITES % INVITE_NODES, {"o": org_id})
    inviters = [n["invitedBy"] for n in body["data"]["organization"]["invites"]["nodes"]]
    assert inviters.count(None) == 3
    assert read_as_json(statements) == (env.backend == "postgresql")


async def test_an_invites_organization_keeps_the_objects(
    env: Env, standard: httpx.AsyncClient
) -> None:
    alice, org_id, _ = await _invites(env)
    query = INVITES % "id email organization { id name }"
    body, statements = await both(env, standard, alice, query, {"o": org_id})
    assert {n["organization"]["id"] for n in body["data"]["organization"]["invites"]["nodes"]} == {
        org_id
    }
    assert not read_as_json(statements)


async def test_an_invites_role_the_enum_lacks_reads_the_page_again_as_objects(
    env: Env, standard: httpx.AsyncClient
) -> None:
    alice, org_id, _ = await _invites(env)
    async with env.sessions() as session:
        await session.execute(
            update(models.Invite).where(models.Invite.role == "admin").values(role="mislaid")
        )
        await session.commit()
    _, statements = await both(
        env, standard, alice, INVITES % "id role", {"o": org_id}, errors=True
    )
    if env.backend == "postgresql":
        assert len([s for s in statements if "AS node_json" in s]) == 1
        assert len([s for s in statements if "FROM invites" in s]) == 2


async def _keys(env: Env) -> tuple[Client, str]:
    """Alice owns an organization with two keys of awkward names, one used and expiring; her
    own personal key (from `env.user`) has neither."""
    alice = await env.user(name="Alice")
    org_id = await env.organization(alice)
    async with env.sessions() as session:
        used, _ = await insert_api_key(
            session,
            user_id=alice.user_id,
            name=AWKWARD,
            organization_id=org_id,
            expires_at=datetime.now(UTC) + timedelta(days=3),
        )
        used.last_used_at = datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
        await insert_api_key(session, user_id=alice.user_id, name="ci\n\\", organization_id=org_id)
        await session.commit()
    return alice, org_id


async def test_organization_api_key_nodes_are_json_with_their_nulls(
    env: Env, standard: httpx.AsyncClient
) -> None:
    alice, org_id = await _keys(env)
    query = ORGANIZATION_KEYS % KEY_NODES
    body, statements = await both(env, standard, alice, query, {"o": org_id})
    nodes = body["data"]["organization"]["apiKeys"]["nodes"]
    assert [n["lastUsedAt"] is None for n in nodes] == [True, False]
    assert [n["expiresAt"] is None for n in nodes] == [True, False]
    assert nodes[1]["name"] == AWKWARD
    assert read_as_json(statements) == (env.backend == "postgresql")


async def test_a_users_api_key_nodes_are_json(env: Env, standard: httpx.AsyncClient) -> None:
    alice, _ = await _keys(env)
    body, statements = await both(env, standard, alice, VIEWER_KEYS % KEY_NODES, {})
    assert len(body["data"]["viewer"]["apiKeys"]["nodes"]) == 3
    assert read_as_json(statements) == (env.backend == "postgresql")


async def test_an_api_keys_organization_id_keeps_the_objects(
    env: Env, standard: httpx.AsyncClient
) -> None:
    """`organizationId` shows an empty string as null (`or None`): a conversion the JSON does
    not write."""
    alice, org_id = await _keys(env)
    query = VIEWER_KEYS % "id name organizationId"
    body, statements = await both(env, standard, alice, query, {})
    ids = [n["organizationId"] for n in body["data"]["viewer"]["apiKeys"]["nodes"]]
    assert sorted(ids, key=str) == sorted([None, org_id, org_id], key=str)
    assert not read_as_json(statements)
