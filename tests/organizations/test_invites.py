"""Invites: send (token shown once, stored hashed), list, count, revoke, accept."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.db import models
from tests.conftest import Client, Env
from tests.envelopes import assert_refused, data_of
from tests.organizations.helpers import team

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
INV_ID = re.compile(r"^inv-[0-9A-HJKMNP-TV-Z]{26}$")

SEND = """
mutation($input: SendInvitesInput!) {
  sendInvites(input: $input) {
    errors { code message field }
    invites { acceptToken invite { id email role status invitedBy { id } expiresAt } }
  }
}"""
REVOKE = """
mutation($input: RevokeInviteInput!) {
  revokeInvite(input: $input) { errors { code message } invite { id status } }
}"""
ACCEPT = """
mutation($input: AcceptInviteInput!) {
  acceptInvite(input: $input) { errors { code message } member { id role userId organizationId } }
}"""
INVITES = """
query($id: ID!) {
  organization(id: $id) {
    invites { totalCount nodes { id email role status createdAt expiresAt } }
  }
}"""
NODE = "query($id: ID!) { node(id: $id) { id ... on Invite { email } } }"


async def send(client: Client, org_id: str, *invitees: tuple[str, str]) -> dict[str, Any]:
    data = await client.gql_data(
        SEND,
        {
            "input": {
                "organizationId": org_id,
                "invites": [{"email": e, "role": r} for e, r in invitees],
            }
        },
    )
    payload: dict[str, Any] = data["sendInvites"]
    return payload


async def invite_rows(env: Env) -> list[models.Invite]:
    return await env.all(select(models.Invite).order_by(models.Invite.id))


async def member_count(env: Env, org_id: str) -> int:
    count: int = await env.scalar(
        select(func.count()).where(models.Member.organization_id == org_id)
    )
    return count


# --- GraphQL ---------------------------------------------------------------------------------


async def test_send_invites_returns_tokens_and_stores_only_their_hash(env: Env) -> None:
    org_id, _, admin, _ = await team(env)
    payload = await send(
        admin, org_id, ("Bob@Example.com", "MEMBER"), ("carol@example.com", "ADMIN")
    )
    assert payload["errors"] == []
    sent = payload["invites"]
    assert [(s["invite"]["email"], s["invite"]["role"]) for s in sent] == [
        ("bob@example.com", "MEMBER"),
        ("carol@example.com", "ADMIN"),
    ]
    assert all(s["invite"]["status"] == "PENDING" for s in sent)
    assert all(s["invite"]["invitedBy"] == {"id": admin.user_id} for s in sent)
    rows = {r.email: r for r in await invite_rows(env)}
    for s in sent:
        row = rows[s["invite"]["email"]]
        assert row.token_hash == hashlib.sha256(s["acceptToken"].encode()).hexdigest()
        assert s["acceptToken"] not in row.token_hash
        ttl = row.expires_at - row.created_at
        assert abs(ttl - timedelta(hours=env.settings.invite_ttl_hours)) < timedelta(minutes=1)


async def test_reinviting_a_pending_email_refreshes_its_token_and_expiry(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    first = (await send(owner, org_id, ("bob@example.com", "MEMBER")))["invites"][0]
    async with env.sessions() as session:
        row = (await session.execute(select(models.Invite))).scalar_one()
        row.expires_at = models.utcnow() + timedelta(hours=1)
        await session.commit()
    second = (await send(owner, org_id, ("BOB@example.com", "ADMIN")))["invites"][0]
    assert second["invite"]["id"] == first["invite"]["id"]
    assert second["acceptToken"] != first["acceptToken"]
    (row,) = await invite_rows(env)
    assert row.role == "admin"
    assert row.expires_at > models.utcnow() + timedelta(hours=2)
    assert row.token_hash == hashlib.sha256(second["acceptToken"].encode()).hexdigest()


async def test_inviting_a_member_is_a_conflict_and_writes_nothing(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    payload = await send(
        owner, org_id, ("new@example.com", "MEMBER"), ("Member@example.com", "MEMBER")
    )
    assert payload == {
        "errors": [
            {
                "code": "CONFLICT",
                "message": "member@example.com is already a member of this organization",
                "field": None,
            }
        ],
        "invites": None,
    }
    assert await invite_rows(env) == []


@pytest.mark.settings(max_invites_per_request=2)
async def test_too_many_invites_at_once_is_a_validation_error(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    payload = await send(owner, org_id, *((f"p{i}@example.com", "MEMBER") for i in range(3)))
    assert payload["errors"] == [
        {
            "code": "VALIDATION_FAILED",
            "message": "At most 2 invites per request",
            "field": "invites",
        }
    ]
    assert await invite_rows(env) == []


async def test_an_invalid_email_is_a_validation_error(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    payload = await send(owner, org_id, ("ok@example.com", "MEMBER"), ("nope", "MEMBER"))
    assert payload["errors"][0]["code"] == "VALIDATION_FAILED"
    assert await invite_rows(env) == []


async def test_an_admin_cannot_invite_an_owner(env: Env) -> None:
    org_id, _, admin, _ = await team(env)
    payload = await send(admin, org_id, ("boss@example.com", "OWNER"))
    assert payload["errors"][0]["code"] == "FORBIDDEN"


async def test_a_member_cannot_send_invites(env: Env) -> None:
    org_id, _, _, member = await team(env)
    payload = await send(member, org_id, ("friend@example.com", "MEMBER"))
    assert payload["errors"][0]["code"] == "FORBIDDEN"
    assert await invite_rows(env) == []


async def test_a_stranger_cannot_send_invites(env: Env) -> None:
    org_id, *_ = await team(env)
    payload = await send(await env.user(), org_id, ("friend@example.com", "MEMBER"))
    assert payload["errors"][0]["code"] == "NOT_FOUND"


async def test_organization_invites_lists_pending_invites_for_admins(env: Env) -> None:
    org_id, owner, admin, _ = await team(env)
    await send(owner, org_id, ("a@example.com", "MEMBER"), ("b@example.com", "MEMBER"))
    data = await admin.gql_data(INVITES, {"id": org_id})
    invites = data["organization"]["invites"]
    assert invites["totalCount"] == 2
    assert sorted(n["email"] for n in invites["nodes"]) == ["a@example.com", "b@example.com"]
    node = invites["nodes"][0]
    assert INV_ID.match(node["id"]) and TS.match(node["createdAt"]) and TS.match(node["expiresAt"])


async def test_organization_invites_is_forbidden_for_members(env: Env) -> None:
    org_id, owner, _, member = await team(env)
    await send(owner, org_id, ("a@example.com", "MEMBER"))
    body = await member.gql(INVITES, {"id": org_id})
    assert body["data"]["organization"]["invites"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_node_shows_an_invite_to_admins_only(env: Env) -> None:
    org_id, owner, admin, member = await team(env)
    invite_id = (await send(owner, org_id, ("a@example.com", "MEMBER")))["invites"][0]["invite"][
        "id"
    ]
    assert (await admin.gql_data(NODE, {"id": invite_id}))["node"] == {
        "id": invite_id,
        "email": "a@example.com",
    }
    assert (await member.gql_data(NODE, {"id": invite_id}))["node"] is None


async def test_revoke_invite_makes_its_token_useless(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    sent = (await send(owner, org_id, ("bob@example.com", "MEMBER")))["invites"][0]
    data = await owner.gql_data(
        REVOKE, {"input": {"organizationId": org_id, "inviteId": sent["invite"]["id"]}}
    )
    assert data["revokeInvite"] == {
        "errors": [],
        "invite": {"id": sent["invite"]["id"], "status": "REVOKED"},
    }
    bob = await env.user("bob@example.com")
    data = await bob.gql_data(ACCEPT, {"input": {"token": sent["acceptToken"]}})
    assert data["acceptInvite"]["errors"] == [
        {"code": "UNPROCESSABLE", "message": "Invite revoked"}
    ]


async def test_revoke_invite_of_another_organization_is_not_found(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    sent = (await send(owner, org_id, ("bob@example.com", "MEMBER")))["invites"][0]
    other = await env.user()
    other_org = await env.organization(other, "Other")
    data = await other.gql_data(
        REVOKE, {"input": {"organizationId": other_org, "inviteId": sent["invite"]["id"]}}
    )
    assert data["revokeInvite"]["errors"] == [{"code": "NOT_FOUND", "message": "Invite not found"}]
    (row,) = await invite_rows(env)
    assert row.status == "pending"


async def test_accept_invite_creates_the_member_with_the_invited_role(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    sent = (await send(owner, org_id, ("bob@example.com", "ADMIN")))["invites"][0]
    bob = await env.user("BOB@example.com")
    data = await bob.gql_data(ACCEPT, {"input": {"token": sent["acceptToken"]}})
    payload = data["acceptInvite"]
    assert payload["errors"] == []
    assert payload["member"]["role"] == "ADMIN"
    assert payload["member"]["userId"] == bob.user_id
    assert payload["member"]["organizationId"] == org_id
    (row,) = await invite_rows(env)
    assert row.status == "accepted" and row.accepted_at is not None
    assert (await bob.get(f"/organizations/{org_id}")).status_code == 200


async def test_accept_invite_for_another_email_is_forbidden(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    sent = (await send(owner, org_id, ("bob@example.com", "MEMBER")))["invites"][0]
    eve = await env.user("eve@example.com")
    data = await eve.gql_data(ACCEPT, {"input": {"token": sent["acceptToken"]}})
    assert data["acceptInvite"]["errors"][0]["code"] == "FORBIDDEN"
    assert await member_count(env, org_id) == 3
    (row,) = await invite_rows(env)
    assert row.status == "pending"


async def test_accept_an_expired_invite_is_unprocessable(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    sent = (await send(owner, org_id, ("bob@example.com", "MEMBER")))["invites"][0]
    async with env.sessions() as session:
        row = (await session.execute(select(models.Invite))).scalar_one()
        row.expires_at = models.utcnow() - timedelta(seconds=1)
        await session.commit()
    bob = await env.user("bob@example.com")
    data = await bob.gql_data(ACCEPT, {"input": {"token": sent["acceptToken"]}})
    assert data["acceptInvite"]["errors"] == [
        {"code": "UNPROCESSABLE", "message": "Invite expired"}
    ]
    assert await member_count(env, org_id) == 3


async def test_accept_a_used_invite_is_unprocessable(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    sent = (await send(owner, org_id, ("bob@example.com", "MEMBER")))["invites"][0]
    bob = await env.user("bob@example.com")
    await bob.gql_data(ACCEPT, {"input": {"token": sent["acceptToken"]}})
    data = await bob.gql_data(ACCEPT, {"input": {"token": sent["acceptToken"]}})
    assert data["acceptInvite"]["errors"] == [
        {"code": "UNPROCESSABLE", "message": "Invite already used"}
    ]
    assert await member_count(env, org_id) == 4


async def test_accept_an_unknown_token_is_not_found(env: Env) -> None:
    bob = await env.user("bob@example.com")
    data = await bob.gql_data(ACCEPT, {"input": {"token": "gwi_nothing"}})
    assert data["acceptInvite"]["errors"] == [{"code": "NOT_FOUND", "message": "Invite not found"}]


async def test_accept_an_invite_of_a_deleted_organization_is_not_found(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    sent = (await send(owner, org_id, ("bob@example.com", "MEMBER")))["invites"][0]
    assert (await owner.delete(f"/organizations/{org_id}")).status_code == 204
    bob = await env.user("bob@example.com")
    data = await bob.gql_data(ACCEPT, {"input": {"token": sent["acceptToken"]}})
    assert data["acceptInvite"]["errors"][0]["code"] == "NOT_FOUND"


# --- REST ------------------------------------------------------------------------------------


async def rest_send(
    client: Client, org_id: str, email: str, role: str | None = None
) -> httpx.Response:
    """`POST /organizations/{org_id}/invites` inviting one email, with `role` if given."""
    invite = {"email": email} if role is None else {"email": email, "role": role}
    return await client.post(f"/organizations/{org_id}/invites", json={"invites": [invite]})


INVITE_KEYS = {"id", "email", "role", "status", "invitedBy", "createdAt", "expiresAt"}


async def test_rest_send_invites_is_201_with_tokens(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    response = await rest_send(owner, org_id, "bob@example.com", "admin")
    (item,) = data_of(response, 201)["items"]
    assert set(item) == INVITE_KEYS | {"acceptToken"}
    assert INV_ID.match(item["id"])
    assert (item["email"], item["role"], item["status"], item["invitedBy"]) == (
        "bob@example.com",
        "admin",
        "pending",
        owner.user_id,
    )
    assert TS.match(item["createdAt"]) and TS.match(item["expiresAt"])
    assert item["acceptToken"].startswith("gwi_")


async def test_rest_send_invites_to_a_member_is_409(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    response = await rest_send(owner, org_id, "admin@example.com", "member")
    assert_refused(response, 409, "admin@example.com is already a member of this organization")


async def test_rest_send_invites_with_a_bad_role_is_400(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    response = await rest_send(owner, org_id, "bob@example.com", "king")
    assert response.status_code == 400
    assert await invite_rows(env) == []


async def test_rest_send_invites_by_a_member_is_403(env: Env) -> None:
    org_id, _, _, member = await team(env)
    response = await rest_send(member, org_id, "x@example.com")
    assert response.status_code == 403


async def test_rest_list_invites_exact_shape(env: Env) -> None:
    org_id, owner, admin, _ = await team(env)
    await send(owner, org_id, ("a@example.com", "MEMBER"), ("b@example.com", "ADMIN"))
    response = await admin.get(f"/organizations/{org_id}/invites")
    data = data_of(response)
    assert set(data) == {"items", "nextCursor"}
    assert data["nextCursor"] is None
    assert all(set(i) == INVITE_KEYS for i in data["items"])
    assert sorted((i["email"], i["role"]) for i in data["items"]) == [
        ("a@example.com", "member"),
        ("b@example.com", "admin"),
    ]


async def test_rest_list_invites_by_a_member_is_403(env: Env) -> None:
    org_id, _, _, member = await team(env)
    response = await member.get(f"/organizations/{org_id}/invites")
    assert_refused(response, 403, "Only organization owners and admins can do this")


async def test_rest_list_invites_by_a_stranger_is_404(env: Env) -> None:
    org_id, *_ = await team(env)
    response = await (await env.user()).get(f"/organizations/{org_id}/invites")
    assert response.status_code == 404


async def test_rest_count_invites_counts_pending_ones(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    sent = await send(owner, org_id, ("a@example.com", "MEMBER"), ("b@example.com", "MEMBER"))
    await owner.delete(f"/organizations/{org_id}/invites/{sent['invites'][0]['invite']['id']}")
    response = await owner.get(f"/organizations/{org_id}/invites/count")
    assert response.status_code == 200
    assert response.json() == {"success": True, "data": {"count": 1}}


async def test_rest_revoke_invite_is_204(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    sent = await send(owner, org_id, ("a@example.com", "MEMBER"))
    invite_id = sent["invites"][0]["invite"]["id"]
    response = await owner.delete(f"/organizations/{org_id}/invites/{invite_id}")
    assert response.status_code == 204
    assert response.content == b""
    (row,) = await invite_rows(env)
    assert row.status == "revoked"


async def test_rest_revoke_an_unknown_invite_is_404(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    response = await owner.delete(f"/organizations/{org_id}/invites/inv-unknown")
    assert_refused(response, 404, "Invite not found")


async def test_rest_accept_invite_returns_the_new_member(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    sent = await send(owner, org_id, ("bob@example.com", "MEMBER"))
    bob = await env.user("bob@example.com", "Bob")
    response = await bob.post("/invites/accept", json={"token": sent["invites"][0]["acceptToken"]})
    data = data_of(response)
    assert TS.match(data.pop("createdAt"))
    assert data.pop("id").startswith("mbr-")
    assert data == {
        "userId": bob.user_id,
        "organizationId": org_id,
        "email": "bob@example.com",
        "displayName": "Bob",
        "role": "member",
    }


async def test_rest_accept_invite_for_another_email_is_403(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    sent = await send(owner, org_id, ("bob@example.com", "MEMBER"))
    eve = await env.user("eve@example.com")
    response = await eve.post("/invites/accept", json={"token": sent["invites"][0]["acceptToken"]})
    assert response.status_code == 403


async def test_rest_accept_a_used_invite_is_422(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    sent = await send(owner, org_id, ("bob@example.com", "MEMBER"))
    bob = await env.user("bob@example.com")
    token = sent["invites"][0]["acceptToken"]
    assert (await bob.post("/invites/accept", json={"token": token})).status_code == 200
    response = await bob.post("/invites/accept", json={"token": token})
    assert_refused(response, 422, "Invite already used")


async def test_rest_accept_an_expired_invite_is_422(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    sent = await send(owner, org_id, ("bob@example.com", "MEMBER"))
    async with env.sessions() as session:
        row = (await session.execute(select(models.Invite))).scalar_one()
        row.expires_at = models.utcnow() - timedelta(seconds=1)
        await session.commit()
    bob = await env.user("bob@example.com")
    response = await bob.post("/invites/accept", json={"token": sent["invites"][0]["acceptToken"]})
    assert_refused(response, 422, "Invite expired")


async def test_rest_accept_without_a_token_is_400(env: Env) -> None:
    bob = await env.user("bob@example.com")
    response = await bob.post("/invites/accept", json={})
    assert response.status_code == 400
