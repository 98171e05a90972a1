"""Members: listing, roles, removal and leaving, on GraphQL and REST."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from sqlalchemy import select

from gateway.db import models
from resolvers.api_keys import insert_api_key
from tests.conftest import Client, Env
from tests.envelopes import assert_refused, data_of

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

MEMBERS = """
query($id: ID!, $first: Int) {
  organization(id: $id) {
    members(first: $first) {
      totalCount
      nodes { id role user { id email displayName } }
    }
  }
}"""
CHANGE = """
mutation($input: ChangeMemberRoleInput!) {
  changeMemberRole(input: $input) { errors { code message } member { id role userId } }
}"""
REMOVE = """
mutation($input: RemoveMembersInput!) {
  removeMembers(input: $input) { errors { code message } removedMemberIds }
}"""
ROLES = "query($id: ID!) { availableRoles(organizationId: $id) }"


class Team:
    """An organization with an owner, an admin and a member (clients and member ids)."""

    def __init__(self, org_id: str, people: dict[str, tuple[Client, str]]) -> None:
        self.org_id = org_id
        self.people = people

    def client(self, name: str) -> Client:
        return self.people[name][0]

    def member_id(self, name: str) -> str:
        return self.people[name][1]

    def rest_member(self, name: str, role: str) -> dict[str, str]:
        """`name`'s membership with `role` as REST shows it, but for its creation time."""
        return {
            "id": self.member_id(name),
            "userId": self.client(name).user_id,
            "organizationId": self.org_id,
            "email": f"{name}@example.com",
            "displayName": name.title(),
            "role": role,
        }

    async def change_role(self, actor: Client, member_id: str, role: str) -> Any:
        """`actor` runs changeMemberRole on `member_id` in this organization: the data."""
        variables = {"organizationId": self.org_id, "memberId": member_id, "role": role}
        return await actor.gql_data(CHANGE, {"input": variables})

    async def remove(self, actor: Client, *member_ids: str) -> Any:
        """`actor` runs removeMembers on `member_ids` in this organization: the data."""
        variables = {"organizationId": self.org_id, "memberIds": list(member_ids)}
        return await actor.gql_data(REMOVE, {"input": variables})


async def team(env: Env) -> Team:
    owner = await env.user("owner@example.com", "Owner")
    admin = await env.user("admin@example.com", "Admin")
    member = await env.user("member@example.com", "Member")
    org_id = await env.organization(owner)
    owner_member_id = await env.scalar(
        select(models.Member.id).where(models.Member.user_id == owner.user_id)
    )
    return Team(
        org_id,
        {
            "owner": (owner, owner_member_id),
            "admin": (admin, await env.add_member(org_id, admin, "admin")),
            "member": (member, await env.add_member(org_id, member, "member")),
        },
    )


async def roles_by_member(env: Env, org_id: str) -> dict[str, str]:
    rows = await env.all(select(models.Member).where(models.Member.organization_id == org_id))
    return {m.id: m.role for m in rows}


# --- GraphQL ---------------------------------------------------------------------------------


async def test_members_list_users_oldest_first(env: Env) -> None:
    t = await team(env)
    data = await t.client("member").gql_data(MEMBERS, {"id": t.org_id})
    members = data["organization"]["members"]
    assert members["totalCount"] == 3
    assert [(n["id"], n["role"], n["user"]["email"]) for n in members["nodes"]] == [
        (t.member_id("owner"), "OWNER", "owner@example.com"),
        (t.member_id("admin"), "ADMIN", "admin@example.com"),
        (t.member_id("member"), "MEMBER", "member@example.com"),
    ]


async def test_member_listing_costs_the_same_statements_for_any_member_count(env: Env) -> None:
    owner = await env.user()
    small = await env.organization(owner, "Small")
    large = await env.organization(owner, "Large")
    await env.add_member(small, await env.user())
    for _ in range(12):
        await env.add_member(large, await env.user())

    async def count(org_id: str, members: int) -> int:
        with env.counter.counting() as statements:
            data = await owner.gql_data(MEMBERS, {"id": org_id, "first": 50})
        nodes = data["organization"]["members"]["nodes"]
        assert len(nodes) == members and all(n["user"] is not None for n in nodes)
        return len(statements)

    await owner.gql_data(MEMBERS, {"id": small})  # warm-up: the key's first use is recorded
    assert await count(large, 13) == await count(small, 2)


async def test_change_member_role_by_the_owner_promotes_a_member(env: Env) -> None:
    t = await team(env)
    data = await t.change_role(t.client("owner"), t.member_id("member"), "ADMIN")
    assert data["changeMemberRole"] == {
        "errors": [],
        "member": {
            "id": t.member_id("member"),
            "role": "ADMIN",
            "userId": t.client("member").user_id,
        },
    }
    assert (await roles_by_member(env, t.org_id))[t.member_id("member")] == "admin"


@pytest.mark.parametrize(
    ("actor", "target", "role", "error"),
    [
        pytest.param(
            "admin",
            "member",
            "OWNER",
            ("FORBIDDEN", "You cannot assign the role owner"),
            id="an_admin_cannot_make_an_owner",
        ),
        pytest.param(
            "admin",
            "owner",
            "MEMBER",
            ("FORBIDDEN", "Admins cannot change an owner's role"),
            id="an_admin_cannot_demote_an_owner",
        ),
        pytest.param(
            "owner",
            "owner",
            "ADMIN",
            ("CONFLICT", "An organization needs at least one owner"),
            id="the_last_owner_cannot_be_demoted",
        ),
    ],
)
async def test_change_member_role_is_refused_and_changes_nothing(
    env: Env, actor: str, target: str, role: str, error: tuple[str, str]
) -> None:
    t = await team(env)
    before = await roles_by_member(env, t.org_id)
    data = await t.change_role(t.client(actor), t.member_id(target), role)
    code, message = error
    assert data["changeMemberRole"]["errors"] == [{"code": code, "message": message}]
    assert await roles_by_member(env, t.org_id) == before


async def test_an_owner_may_step_down_when_another_owner_remains(env: Env) -> None:
    t = await team(env)
    owner = t.client("owner")
    await t.change_role(owner, t.member_id("admin"), "OWNER")
    data = await t.change_role(owner, t.member_id("owner"), "MEMBER")
    assert data["changeMemberRole"]["errors"] == []
    assert (await roles_by_member(env, t.org_id))[t.member_id("owner")] == "member"


async def test_change_member_role_by_a_member_is_forbidden(env: Env) -> None:
    t = await team(env)
    data = await t.change_role(t.client("member"), t.member_id("member"), "ADMIN")
    assert data["changeMemberRole"]["errors"][0]["code"] == "FORBIDDEN"


async def test_change_member_role_of_another_organizations_member_is_not_found(env: Env) -> None:
    t = await team(env)
    other_owner = await env.user()
    other_org = await env.organization(other_owner, "Other")
    outsider = await env.add_member(other_org, await env.user())
    data = await t.change_role(t.client("owner"), outsider, "ADMIN")
    assert data["changeMemberRole"]["errors"] == [
        {"code": "NOT_FOUND", "message": "Member not found"}
    ]
    stranger = await env.user()
    data = await t.change_role(stranger, t.member_id("member"), "ADMIN")
    assert data["changeMemberRole"]["errors"][0]["code"] == "NOT_FOUND"


async def test_an_admin_removes_a_member_and_their_org_access_goes(env: Env) -> None:
    t = await team(env)
    member = t.client("member")
    await member.put("/users/active-account", json={"organizationId": t.org_id})
    data = await t.remove(t.client("admin"), t.member_id("member"))
    assert data["removeMembers"] == {"errors": [], "removedMemberIds": [t.member_id("member")]}
    assert t.member_id("member") not in await roles_by_member(env, t.org_id)
    active = await env.scalar(
        select(models.User.active_organization_id).where(models.User.id == member.user_id)
    )
    assert active is None
    assert (await member.get(f"/organizations/{t.org_id}")).status_code == 404


async def test_an_admin_cannot_remove_an_owner_and_nothing_is_removed(env: Env) -> None:
    t = await team(env)
    data = await t.remove(t.client("admin"), t.member_id("member"), t.member_id("owner"))
    assert data["removeMembers"]["errors"] == [
        {"code": "FORBIDDEN", "message": "Admins cannot remove owners"}
    ]
    assert len(await roles_by_member(env, t.org_id)) == 3


async def test_a_member_may_leave(env: Env) -> None:
    t = await team(env)
    data = await t.remove(t.client("member"), t.member_id("member"))
    assert data["removeMembers"]["removedMemberIds"] == [t.member_id("member")]


async def test_a_member_cannot_remove_someone_else(env: Env) -> None:
    t = await team(env)
    data = await t.remove(t.client("member"), t.member_id("admin"))
    assert data["removeMembers"]["errors"][0]["code"] == "FORBIDDEN"
    assert len(await roles_by_member(env, t.org_id)) == 3


async def test_the_last_owner_cannot_leave(env: Env) -> None:
    t = await team(env)
    data = await t.remove(t.client("owner"), t.member_id("owner"))
    assert data["removeMembers"]["errors"] == [
        {"code": "CONFLICT", "message": "An organization needs at least one owner"}
    ]
    assert len(await roles_by_member(env, t.org_id)) == 3


async def test_remove_members_revokes_the_removed_users_keys_for_that_organization(
    env: Env,
) -> None:
    t = await team(env)
    async with env.sessions() as session:
        await insert_api_key(
            session, user_id=t.client("member").user_id, name="org", organization_id=t.org_id
        )
        await session.commit()
    await t.remove(t.client("owner"), t.member_id("member"))
    live = await env.all(
        select(models.ApiKey).where(
            models.ApiKey.organization_id == t.org_id, models.ApiKey.revoked_at.is_(None)
        )
    )
    assert live == []


async def test_remove_members_of_an_unknown_id_is_not_found(env: Env) -> None:
    t = await team(env)
    data = await t.remove(t.client("owner"), t.member_id("member"), "mbr-x")
    assert data["removeMembers"]["errors"][0]["code"] == "NOT_FOUND"
    assert len(await roles_by_member(env, t.org_id)) == 3


async def test_available_roles_follow_the_callers_role(env: Env) -> None:
    t = await team(env)
    expected = {
        "owner": ["OWNER", "ADMIN", "MEMBER"],
        "admin": ["ADMIN", "MEMBER"],
        "member": [],
    }
    for name, roles in expected.items():
        data = await t.client(name).gql_data(ROLES, {"id": t.org_id})
        assert data["availableRoles"] == roles


async def test_available_roles_for_a_stranger_is_not_found(env: Env) -> None:
    t = await team(env)
    body = await (await env.user()).gql(ROLES, {"id": t.org_id})
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


# --- REST ------------------------------------------------------------------------------------


async def test_rest_list_members_is_newest_first_with_user_details(env: Env) -> None:
    t = await team(env)
    response = await t.client("member").get(f"/organizations/{t.org_id}/members")
    data = data_of(response)
    assert data["nextCursor"] is None
    assert [m["id"] for m in data["items"]] == [
        t.member_id("member"),
        t.member_id("admin"),
        t.member_id("owner"),
    ]
    first = data["items"][0]
    assert TS.match(first.pop("createdAt"))
    assert first == t.rest_member("member", "member")


async def test_rest_list_members_pages_with_limit_and_cursor(env: Env) -> None:
    t = await team(env)
    owner = t.client("owner")
    first = (await owner.get(f"/organizations/{t.org_id}/members?limit=2")).json()["data"]
    assert [m["id"] for m in first["items"]] == [t.member_id("member"), t.member_id("admin")]
    assert first["nextCursor"]
    second = (
        await owner.get(f"/organizations/{t.org_id}/members?limit=2&cursor={first['nextCursor']}")
    ).json()["data"]
    assert [m["id"] for m in second["items"]] == [t.member_id("owner")]
    assert second["nextCursor"] is None


async def test_rest_list_members_for_a_stranger_is_404(env: Env) -> None:
    t = await team(env)
    response = await (await env.user()).get(f"/organizations/{t.org_id}/members")
    assert_refused(response, 404, "Organization not found")


async def test_rest_list_members_with_a_bad_limit_is_400(env: Env) -> None:
    t = await team(env)
    response = await t.client("owner").get(f"/organizations/{t.org_id}/members?limit=500")
    assert response.status_code == 400


async def test_rest_remove_members_returns_the_removed_ids(env: Env) -> None:
    t = await team(env)
    response = await t.client("owner").delete(
        f"/organizations/{t.org_id}/members", json={"memberIds": [t.member_id("member")]}
    )
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "data": {"removedMemberIds": [t.member_id("member")]},
    }


async def test_rest_remove_the_last_owner_is_409(env: Env) -> None:
    t = await team(env)
    response = await t.client("owner").delete(
        f"/organizations/{t.org_id}/members", json={"memberIds": [t.member_id("owner")]}
    )
    assert_refused(response, 409, "An organization needs at least one owner")


async def test_rest_admin_removing_an_owner_is_403(env: Env) -> None:
    t = await team(env)
    response = await t.client("admin").delete(
        f"/organizations/{t.org_id}/members", json={"memberIds": [t.member_id("owner")]}
    )
    assert response.status_code == 403


async def test_rest_remove_members_with_an_empty_list_is_400(env: Env) -> None:
    t = await team(env)
    response = await t.client("owner").delete(
        f"/organizations/{t.org_id}/members", json={"memberIds": []}
    )
    assert response.status_code == 400
    assert "memberIds" in response.json()["error"]


async def test_rest_available_roles(env: Env) -> None:
    t = await team(env)
    response = await t.client("admin").get(f"/organizations/{t.org_id}/members/available-roles")
    assert response.status_code == 200
    assert response.json() == {"success": True, "data": {"roles": ["admin", "member"]}}


async def test_rest_available_roles_for_a_stranger_is_404(env: Env) -> None:
    t = await team(env)
    response = await (await env.user()).get(f"/organizations/{t.org_id}/members/available-roles")
    assert response.status_code == 404


async def test_rest_change_role_returns_the_member(env: Env) -> None:
    t = await team(env)
    response = await t.client("owner").put(
        f"/organizations/{t.org_id}/members/{t.member_id('member')}/role", json={"role": "admin"}
    )
    data = data_of(response)
    assert TS.match(data.pop("createdAt"))
    assert data == t.rest_member("member", "admin")


@pytest.mark.parametrize(
    ("actor", "target", "role", "status", "error"),
    [
        pytest.param(
            "owner",
            "member",
            "boss",
            400,
            "role must be one of owner, admin, member",
            id="to_an_unknown_role_is_400",
        ),
        pytest.param(
            "member",
            "admin",
            "member",
            403,
            "Only organization owners and admins can do this",
            id="by_a_member_is_403",
        ),
        pytest.param(
            "owner", None, "member", 404, "Member not found", id="of_an_unknown_member_is_404"
        ),
        pytest.param(
            "owner",
            "owner",
            "admin",
            409,
            "An organization needs at least one owner",
            id="demoting_the_last_owner_is_409",
        ),
    ],
)
async def test_rest_change_role_is_refused(
    env: Env, actor: str, target: str | None, role: str, status: int, error: str
) -> None:
    t = await team(env)
    member_id = t.member_id(target) if target else "mbr-unknown"
    response = await t.client(actor).put(
        f"/organizations/{t.org_id}/members/{member_id}/role", json={"role": role}
    )
    assert_refused(response, status, error)


# --- the last owner, under concurrency -------------------------------------------------------


async def two_owners(env: Env, trial: int) -> tuple[str, list[tuple[Client, str]]]:
    first = await env.user(f"first-{trial}@example.com")
    second = await env.user(f"second-{trial}@example.com")
    org_id = await env.organization(first)
    first_id = await env.scalar(
        select(models.Member.id).where(
            models.Member.user_id == first.user_id, models.Member.organization_id == org_id
        )
    )
    second_id = await env.add_member(org_id, second, "owner")
    await env.add_member(org_id, await env.user(f"third-{trial}@example.com"), "member")
    return org_id, [(first, first_id), (second, second_id)]


async def test_two_owners_stepping_down_at_once_leave_one_owner(env: Env) -> None:
    for trial in range(10):
        org_id, owners = await two_owners(env, trial)
        responses = await asyncio.gather(
            *(
                client.put(
                    f"/organizations/{org_id}/members/{member_id}/role", json={"role": "admin"}
                )
                for client, member_id in owners
            )
        )
        assert sorted(r.status_code for r in responses) == [200, 409], trial
        assert list((await roles_by_member(env, org_id)).values()).count("owner") == 1


async def test_two_owners_leaving_at_once_leave_one_owner(env: Env) -> None:
    for trial in range(10):
        org_id, owners = await two_owners(env, trial)
        responses = await asyncio.gather(
            *(
                client.delete(f"/organizations/{org_id}/members", json={"memberIds": [member_id]})
                for client, member_id in owners
            )
        )
        assert sorted(r.status_code for r in responses) == [200, 409], trial
        assert list((await roles_by_member(env, org_id)).values()).count("owner") == 1
