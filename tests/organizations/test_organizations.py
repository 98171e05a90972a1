"""Organizations: create, read, update, delete, remote config, on GraphQL and REST."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.db import models
from resolvers.api_keys import insert_api_key
from tests.conftest import Env
from tests.documents import mutation
from tests.envelopes import assert_refused, data_of
from tests.organizations.helpers import team

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
ORG_ID = re.compile(r"^org-[0-9A-HJKMNP-TV-Z]{26}$")
CONFIG = '{"version": "1", "theme": "dark"}'

ORG_FIELDS = (
    "id name remoteConfigEnabled defaultRemoteConfig externalOrganizationId memberCount viewerRole"
)
CREATE = mutation("createOrganization", f"organization {{ {ORG_FIELDS} }}")
UPDATE = mutation("updateOrganization", f"organization {{ {ORG_FIELDS} }}")
DELETE = mutation("deleteOrganization", "deletedOrganizationId", errors="code message")
REMOTE = mutation("updateRemoteConfig", "organization { remoteConfigEnabled defaultRemoteConfig }")
ORG = f"query($id: ID!) {{ organization(id: $id) {{ {ORG_FIELDS} }} }}"
VIEWER_CONFIG = """
{ viewerRemoteConfig { organizationId value enabled organizations { organizationId name } } }
"""


async def org_row(env: Env, org_id: str) -> models.Organization:
    async with env.sessions() as session:
        org = await session.get(models.Organization, org_id)
        assert org is not None
        return org


# --- GraphQL ---------------------------------------------------------------------------------


async def test_create_organization_makes_the_caller_owner_with_a_billing_account(
    env: Env,
) -> None:
    alice = await env.user()
    data = await alice.gql_data(CREATE, {"input": {"name": "  Acme  "}})
    payload = data["createOrganization"]
    assert payload["errors"] == []
    org = payload["organization"]
    assert ORG_ID.match(org["id"])
    assert org == {
        "id": org["id"],
        "name": "Acme",
        "remoteConfigEnabled": False,
        "defaultRemoteConfig": "{}",
        "externalOrganizationId": None,
        "memberCount": 1,
        "viewerRole": "OWNER",
    }
    account = await env.scalar(
        select(models.Account).where(models.Account.organization_id == org["id"])
    )
    assert account.kind == "organization" and account.balance == 0
    role = await env.scalar(
        select(models.Member.role).where(models.Member.user_id == alice.user_id)
    )
    assert role == "owner"


async def test_create_organization_with_a_blank_name_writes_nothing(env: Env) -> None:
    alice = await env.user()
    data = await alice.gql_data(CREATE, {"input": {"name": "   "}})
    assert data["createOrganization"] == {
        "errors": [
            {"code": "VALIDATION_FAILED", "message": "name must not be blank", "field": "name"}
        ],
        "organization": None,
    }
    assert await env.scalar(select(func.count()).select_from(models.Organization)) == 0
    assert await env.scalar(select(func.count()).select_from(models.Member)) == 0


async def test_update_organization_by_an_admin_changes_name_and_remote_config(env: Env) -> None:
    org_id, _, admin, _ = await team(env)
    data = await admin.gql_data(
        UPDATE,
        {
            "input": {
                "organizationId": org_id,
                "name": "Renamed",
                "remoteConfigEnabled": True,
                "defaultRemoteConfig": CONFIG,
            }
        },
    )
    payload = data["updateOrganization"]
    assert payload["errors"] == []
    assert payload["organization"]["name"] == "Renamed"
    assert payload["organization"]["remoteConfigEnabled"] is True
    assert payload["organization"]["defaultRemoteConfig"] == CONFIG
    assert payload["organization"]["viewerRole"] == "ADMIN"
    org = await org_row(env, org_id)
    assert (org.name, org.remote_config_enabled, org.default_remote_config) == (
        "Renamed",
        True,
        CONFIG,
    )


@pytest.mark.parametrize(
    "bad",
    ["not json", "[1, 2]", '"text"', "{}", '{"version": 1}', '{"version": null}'],
)
async def test_update_organization_refuses_a_config_without_a_string_version(
    env: Env, bad: str
) -> None:
    org_id, owner, _, _ = await team(env)
    data = await owner.gql_data(
        UPDATE, {"input": {"organizationId": org_id, "name": "New", "defaultRemoteConfig": bad}}
    )
    errors = data["updateOrganization"]["errors"]
    assert [(e["code"], e["field"]) for e in errors] == [
        ("VALIDATION_FAILED", "defaultRemoteConfig")
    ]
    org = await org_row(env, org_id)
    assert (org.name, org.default_remote_config) == ("Acme", "{}")


async def test_update_organization_by_a_member_is_forbidden(env: Env) -> None:
    org_id, _, _, member = await team(env)
    data = await member.gql_data(UPDATE, {"input": {"organizationId": org_id, "name": "Mine"}})
    assert data["updateOrganization"]["errors"][0]["code"] == "FORBIDDEN"
    assert (await org_row(env, org_id)).name == "Acme"


async def test_update_organization_by_a_stranger_is_not_found(env: Env) -> None:
    org_id, *_ = await team(env)
    stranger = await env.user()
    data = await stranger.gql_data(UPDATE, {"input": {"organizationId": org_id, "name": "Mine"}})
    assert data["updateOrganization"]["errors"] == [
        {"code": "NOT_FOUND", "message": "Organization not found", "field": None}
    ]


async def test_update_remote_config_turns_distribution_on_with_a_value(env: Env) -> None:
    org_id, _, admin, _ = await team(env)
    data = await admin.gql_data(
        REMOTE, {"input": {"organizationId": org_id, "enabled": True, "value": CONFIG}}
    )
    assert data["updateRemoteConfig"] == {
        "errors": [],
        "organization": {"remoteConfigEnabled": True, "defaultRemoteConfig": CONFIG},
    }


async def test_update_remote_config_refuses_an_invalid_value(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    data = await owner.gql_data(
        REMOTE, {"input": {"organizationId": org_id, "enabled": True, "value": "[]"}}
    )
    assert [e["field"] for e in data["updateRemoteConfig"]["errors"]] == ["value"]
    assert (await org_row(env, org_id)).remote_config_enabled is False


async def test_update_remote_config_by_a_member_is_forbidden(env: Env) -> None:
    org_id, _, _, member = await team(env)
    data = await member.gql_data(REMOTE, {"input": {"organizationId": org_id, "enabled": True}})
    assert data["updateRemoteConfig"]["errors"][0]["code"] == "FORBIDDEN"


async def test_delete_organization_soft_deletes_and_members_lose_access(env: Env) -> None:
    org_id, owner, _, member = await team(env)
    await member.put("/users/active-account", json={"organizationId": org_id})
    data = await owner.gql_data(DELETE, {"input": {"organizationId": org_id}})
    assert data["deleteOrganization"] == {"errors": [], "deletedOrganizationId": org_id}
    assert (await org_row(env, org_id)).deleted_at is not None
    assert (await member.gql_data(ORG, {"id": org_id}))["organization"] is None
    active = await env.scalar(
        select(models.User.active_organization_id).where(models.User.id == member.user_id)
    )
    assert active is None
    # The balance stays on record.
    assert (
        await env.scalar(select(func.count()).where(models.Account.organization_id == org_id)) == 1
    )


async def test_delete_organization_by_an_admin_is_forbidden(env: Env) -> None:
    org_id, _, admin, _ = await team(env)
    data = await admin.gql_data(DELETE, {"input": {"organizationId": org_id}})
    assert data["deleteOrganization"]["errors"][0] == {
        "code": "FORBIDDEN",
        "message": "Only organization owners can do this",
    }
    assert (await org_row(env, org_id)).deleted_at is None


async def test_organization_query_is_null_for_a_stranger(env: Env) -> None:
    org_id, *_ = await team(env)
    stranger = await env.user()
    assert (await stranger.gql_data(ORG, {"id": org_id}))["organization"] is None


async def test_organization_shows_member_count_and_viewer_role(env: Env) -> None:
    org_id, _, _, member = await team(env)
    org = (await member.gql_data(ORG, {"id": org_id}))["organization"]
    assert (org["memberCount"], org["viewerRole"]) == (3, "MEMBER")


async def test_viewer_remote_config_is_null_without_a_distributing_organization(
    env: Env,
) -> None:
    _, owner, _, _ = await team(env)
    assert (await owner.gql_data(VIEWER_CONFIG))["viewerRemoteConfig"] is None


async def test_viewer_remote_config_prefers_the_active_organization(env: Env) -> None:
    alice = await env.user()
    first = await env.organization(alice, "First")
    second = await env.organization(alice, "Second")
    for org_id, version in ((first, "1"), (second, "2")):
        await alice.gql_data(
            REMOTE,
            {
                "input": {
                    "organizationId": org_id,
                    "enabled": True,
                    "value": f'{{"version": "{version}"}}',
                }
            },
        )
    await alice.put("/users/active-account", json={"organizationId": second})
    found = (await alice.gql_data(VIEWER_CONFIG))["viewerRemoteConfig"]
    assert found == {
        "organizationId": second,
        "value": '{"version": "2"}',
        "enabled": True,
        "organizations": [
            {"organizationId": first, "name": "First"},
            {"organizationId": second, "name": "Second"},
        ],
    }


# --- REST ------------------------------------------------------------------------------------


def assert_organization_wire(data: dict[str, Any]) -> None:
    assert set(data) == {
        "id",
        "name",
        "createdAt",
        "updatedAt",
        "memberCount",
        "remoteConfigEnabled",
        "defaultRemoteConfig",
        "externalOrganizationId",
    }
    assert ORG_ID.match(data["id"])
    assert TS.match(data["createdAt"]) and TS.match(data["updatedAt"])


async def test_rest_post_organization_is_201_with_the_organization(env: Env) -> None:
    alice = await env.user()
    response = await alice.post("/organizations", json={"name": "Acme"})
    data = data_of(response, 201)
    assert_organization_wire(data)
    assert data["name"] == "Acme"
    assert data["memberCount"] == 1
    assert data["remoteConfigEnabled"] is False
    assert data["defaultRemoteConfig"] == "{}"
    assert data["externalOrganizationId"] is None


async def test_rest_post_organization_without_a_name_is_400(env: Env) -> None:
    alice = await env.user()
    response = await alice.post("/organizations", json={})
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert "name" in response.json()["error"]
    assert await env.scalar(select(func.count()).select_from(models.Organization)) == 0


async def test_rest_get_organization_for_a_member(env: Env) -> None:
    org_id, _, _, member = await team(env)
    response = await member.get(f"/organizations/{org_id}")
    data = data_of(response)
    assert_organization_wire(data)
    assert (data["id"], data["name"], data["memberCount"]) == (org_id, "Acme", 3)


async def test_rest_get_organization_for_a_stranger_is_404(env: Env) -> None:
    org_id, *_ = await team(env)
    stranger = await env.user()
    response = await stranger.get(f"/organizations/{org_id}")
    assert_refused(response, 404, "Organization not found")


async def test_rest_put_organization_updates_it(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    response = await owner.put(
        f"/organizations/{org_id}",
        json={"name": "Renamed", "remoteConfigEnabled": True, "defaultRemoteConfig": CONFIG},
    )
    data = data_of(response)
    assert_organization_wire(data)
    assert (data["name"], data["remoteConfigEnabled"], data["defaultRemoteConfig"]) == (
        "Renamed",
        True,
        CONFIG,
    )


async def test_rest_put_organization_with_a_bad_config_is_400(env: Env) -> None:
    org_id, owner, _, _ = await team(env)
    response = await owner.put(
        f"/organizations/{org_id}", json={"name": "X", "defaultRemoteConfig": '{"v": 1}'}
    )
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": 'defaultRemoteConfig must have a string "version"',
    }
    assert (await org_row(env, org_id)).name == "Acme"


async def test_rest_put_organization_by_a_member_is_403(env: Env) -> None:
    org_id, _, _, member = await team(env)
    response = await member.put(f"/organizations/{org_id}", json={"name": "Mine"})
    assert response.status_code == 403
    assert response.json()["success"] is False


async def test_rest_delete_organization_is_204_and_then_404(env: Env) -> None:
    org_id, owner, _, member = await team(env)
    response = await owner.delete(f"/organizations/{org_id}")
    assert response.status_code == 204
    assert response.reason_phrase == "No Content"
    assert response.content == b""
    assert (await member.get(f"/organizations/{org_id}")).status_code == 404
    assert (await owner.delete(f"/organizations/{org_id}")).status_code == 404


async def test_rest_delete_organization_by_an_admin_is_403(env: Env) -> None:
    org_id, _, admin, _ = await team(env)
    response = await admin.delete(f"/organizations/{org_id}")
    assert_refused(response, 403, "Only organization owners can do this")


async def test_rest_organization_remote_config_defaults_to_an_empty_object(env: Env) -> None:
    org_id, _, _, member = await team(env)
    response = await member.get(f"/organizations/{org_id}/remote-config")
    assert response.status_code == 200
    assert response.json() == {"success": True, "data": {"enabled": False, "value": "{}"}}


async def test_rest_organization_remote_config_for_a_stranger_is_404(env: Env) -> None:
    org_id, *_ = await team(env)
    stranger = await env.user()
    response = await stranger.get(f"/organizations/{org_id}/remote-config")
    assert response.status_code == 404


async def test_rest_user_remote_config_is_null_when_no_organization_distributes(
    env: Env,
) -> None:
    _, owner, _, _ = await team(env)
    response = await owner.get("/users/me/remote-config")
    assert response.status_code == 200
    assert response.json() == {"success": True, "data": None}


async def test_rest_user_remote_config_lists_distributing_organizations(env: Env) -> None:
    org_id, owner, _, member = await team(env)
    await owner.put(
        f"/organizations/{org_id}",
        json={"remoteConfigEnabled": True, "defaultRemoteConfig": CONFIG},
    )
    response = await member.get("/users/me/remote-config")
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "data": {
            "organizationId": org_id,
            "value": CONFIG,
            "enabled": True,
            "organizations": [{"organizationId": org_id, "name": "Acme"}],
        },
    }


async def test_rest_user_remote_config_with_an_organization_key_sees_only_that_organization(
    env: Env,
) -> None:
    alice = await env.user()
    first = await env.organization(alice, "First")
    second = await env.organization(alice, "Second")
    for org_id in (first, second):
        await alice.put(
            f"/organizations/{org_id}",
            json={"remoteConfigEnabled": True, "defaultRemoteConfig": CONFIG},
        )
    async with env.sessions() as session:
        _, token = await insert_api_key(
            session, user_id=alice.user_id, name="second only", organization_id=second
        )
        await session.commit()
    data = (await env.client(token, alice.user_id).get("/users/me/remote-config")).json()["data"]
    assert data["organizationId"] == second
    assert data["organizations"] == [{"organizationId": second, "name": "Second"}]
