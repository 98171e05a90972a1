"""/users/me and the active account, over REST and the matching GraphQL mutations."""

from __future__ import annotations

import asyncio
import re

from sqlalchemy import select

from gateway.db import models
from tests.conftest import Env
from tests.envelopes import assert_refused, data_of

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
ME_FIELDS = {
    "id",
    "email",
    "displayName",
    "photoUrl",
    "termsAcceptedAt",
    "createdAt",
    "updatedAt",
    "organizations",
}

UPDATE_PROFILE = """
mutation($input: UpdateProfileInput!) {
  updateProfile(input: $input) {
    errors { code message field }
    user { id displayName photoUrl }
  }
}"""
ACCEPT_TERMS = """
mutation { acceptTerms { errors { code message } user { termsAcceptedAt } } }"""
SWITCH = """
mutation($org: ID) {
  switchActiveAccount(input: {organizationId: $org}) {
    errors { code message field }
    user { id activeOrganization { id } }
  }
}"""
DELETE_ACCOUNT = """
mutation { deleteAccount { errors { code message } deletedUserId } }"""


# --- GET /users/me --------------------------------------------------------------------------


async def test_get_me_has_exactly_the_contract_shape(env: Env) -> None:
    alice = await env.user("Alice@Example.com", "Alice")
    org_id = await env.organization(alice, "Acme")
    response = await alice.get("/users/me")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"success", "data"}
    assert body["success"] is True
    me = body["data"]
    assert set(me) == ME_FIELDS
    assert me["id"] == alice.user_id
    assert me["email"] == "alice@example.com"
    assert me["displayName"] == "Alice"
    assert me["photoUrl"] == ""
    assert me["termsAcceptedAt"] is None
    assert TS.match(me["createdAt"]) and TS.match(me["updatedAt"])
    member_id = await env.scalar(
        select(models.Member.id).where(models.Member.user_id == alice.user_id)
    )
    assert me["organizations"] == [
        {
            "organizationId": org_id,
            "memberId": member_id,
            "name": "Acme",
            "roles": ["owner"],
            "active": False,
        }
    ]


async def test_get_me_lists_every_membership_with_its_role(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    acme = await env.organization(alice, "Acme")
    await env.add_member(acme, bob, "admin")
    own = await env.organization(bob, "Bob's")
    orgs = (await bob.get("/users/me")).json()["data"]["organizations"]
    assert {(o["organizationId"], o["roles"][0]) for o in orgs} == {
        (acme, "admin"),
        (own, "owner"),
    }


async def test_get_me_without_a_token_is_401(env: Env) -> None:
    response = await env.anonymous.get("/users/me")
    assert_refused(response, 401, "Authentication required")


# --- PATCH /users/me ------------------------------------------------------------------------


async def test_patch_me_updates_name_and_photo_and_returns_me(env: Env) -> None:
    alice = await env.user(name="Alice")
    before = (await alice.get("/users/me")).json()["data"]
    response = await alice.patch(
        "/users/me", json={"displayName": "  Alice B  ", "photoUrl": "https://img.test/a.png"}
    )
    me = data_of(response)
    assert set(me) == ME_FIELDS
    assert me["displayName"] == "Alice B"
    assert me["photoUrl"] == "https://img.test/a.png"
    assert me["updatedAt"] >= before["updatedAt"]
    assert (await alice.get("/users/me")).json()["data"]["displayName"] == "Alice B"


async def test_patch_me_leaves_absent_fields_alone(env: Env) -> None:
    alice = await env.user(name="Alice")
    await alice.patch("/users/me", json={"photoUrl": "https://img.test/a.png"})
    me = (await alice.patch("/users/me", json={"displayName": "Al"})).json()["data"]
    assert me["photoUrl"] == "https://img.test/a.png"


async def test_patch_me_rejects_a_photo_that_is_not_http(env: Env) -> None:
    alice = await env.user(name="Alice")
    response = await alice.patch("/users/me", json={"photoUrl": "javascript:alert(1)"})
    assert_refused(response, 400, "photoUrl must be an http(s) URL")


async def test_patch_me_rejects_a_too_long_name_naming_the_field(env: Env) -> None:
    alice = await env.user(name="Alice")
    response = await alice.patch("/users/me", json={"displayName": "x" * 201})
    assert response.status_code == 400
    assert "displayName" in response.json()["error"]
    assert (await alice.get("/users/me")).json()["data"]["displayName"] == "Alice"


async def test_patch_me_rejects_a_wrongly_typed_field(env: Env) -> None:
    alice = await env.user()
    response = await alice.patch("/users/me", json={"displayName": 42})
    assert response.status_code == 400
    assert "displayName" in response.json()["error"]


# --- accept-terms ---------------------------------------------------------------------------


async def test_accept_terms_sets_the_time_and_keeps_the_first(env: Env) -> None:
    alice = await env.user()
    first = await alice.post("/users/me/accept-terms")
    assert first.status_code == 200
    accepted = first.json()["data"]["termsAcceptedAt"]
    assert TS.match(accepted)
    assert set(first.json()["data"]) == ME_FIELDS
    await asyncio.sleep(0.002)
    again = await alice.post("/users/me/accept-terms")
    assert again.status_code == 200
    assert again.json()["data"]["termsAcceptedAt"] == accepted
    assert (await alice.get("/users/me")).json()["data"]["termsAcceptedAt"] == accepted


# --- PUT /users/active-account --------------------------------------------------------------


async def test_active_account_switch_answers_204_and_marks_the_org_active(env: Env) -> None:
    alice = await env.user()
    acme = await env.organization(alice, "Acme")
    other = await env.organization(alice, "Other")
    response = await alice.put("/users/active-account", json={"organizationId": acme})
    assert response.status_code == 204
    assert response.content == b""
    orgs = (await alice.get("/users/me")).json()["data"]["organizations"]
    assert {o["organizationId"]: o["active"] for o in orgs} == {acme: True, other: False}


async def test_active_account_null_and_empty_mean_personal(env: Env) -> None:
    alice = await env.user()
    acme = await env.organization(alice)
    for personal in (None, ""):
        await alice.put("/users/active-account", json={"organizationId": acme})
        response = await alice.put("/users/active-account", json={"organizationId": personal})
        assert response.status_code == 204
        orgs = (await alice.get("/users/me")).json()["data"]["organizations"]
        assert [o["active"] for o in orgs] == [False]


async def test_active_account_of_a_non_member_org_is_404(env: Env) -> None:
    alice, eve = await env.user(), await env.user()
    acme = await env.organization(alice)
    response = await eve.put("/users/active-account", json={"organizationId": acme})
    assert_refused(response, 404, "Organization not found")


async def test_active_account_of_an_unknown_org_is_404(env: Env) -> None:
    alice = await env.user()
    response = await alice.put(
        "/users/active-account", json={"organizationId": "org-01ARZ3NDEKTSV4RRFFQ69G5FAV"}
    )
    assert response.status_code == 404


# --- DELETE /users/me -----------------------------------------------------------------------


async def test_delete_me_answers_204_and_the_account_is_gone(env: Env) -> None:
    alice = await env.user("gone@example.com")
    response = await alice.delete("/users/me")
    assert response.status_code == 204
    assert response.content == b""
    assert (await alice.get("/users/me")).status_code == 401
    user = await env.scalar(select(models.User).where(models.User.id == alice.user_id))
    assert user.deleted_at is not None
    assert user.email != "gone@example.com"


async def test_delete_me_deletes_an_organization_left_empty(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    assert (await alice.delete("/users/me")).status_code == 204
    org = await env.scalar(select(models.Organization).where(models.Organization.id == org_id))
    assert org.deleted_at is not None


async def test_delete_me_as_last_owner_with_members_is_409(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob)
    response = await alice.delete("/users/me")
    assert response.status_code == 409
    assert response.json()["success"] is False
    assert "last owner" in response.json()["error"]
    assert (await alice.get("/users/me")).status_code == 200


async def test_delete_me_with_another_owner_succeeds(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob, "owner")
    assert (await alice.delete("/users/me")).status_code == 204
    orgs = (await bob.get("/users/me")).json()["data"]["organizations"]
    assert [o["organizationId"] for o in orgs] == [org_id]


# --- GraphQL mutations ----------------------------------------------------------------------


async def test_update_profile_mutation_changes_the_profile(env: Env) -> None:
    alice = await env.user(name="Alice")
    variables = {"input": {"displayName": "Ally", "photoUrl": "https://img.test/x.png"}}
    payload = (await alice.gql_data(UPDATE_PROFILE, variables))["updateProfile"]
    assert payload == {
        "errors": [],
        "user": {
            "id": alice.user_id,
            "displayName": "Ally",
            "photoUrl": "https://img.test/x.png",
        },
    }


async def test_update_profile_mutation_reports_a_bad_photo_url(env: Env) -> None:
    alice = await env.user(name="Alice")
    payload = (await alice.gql_data(UPDATE_PROFILE, {"input": {"photoUrl": "ftp://x"}}))[
        "updateProfile"
    ]
    assert payload == {
        "errors": [
            {
                "code": "VALIDATION_FAILED",
                "message": "photoUrl must be an http(s) URL",
                "field": "photoUrl",
            }
        ],
        "user": None,
    }


async def test_accept_terms_mutation_keeps_the_first_time(env: Env) -> None:
    alice = await env.user()
    first = (await alice.gql_data(ACCEPT_TERMS))["acceptTerms"]
    assert first["errors"] == []
    await asyncio.sleep(0.002)
    again = (await alice.gql_data(ACCEPT_TERMS))["acceptTerms"]
    assert again["user"]["termsAcceptedAt"] == first["user"]["termsAcceptedAt"]


async def test_accept_terms_mutation_needs_a_user(env: Env) -> None:
    body = await env.anonymous.gql(ACCEPT_TERMS)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_switch_active_account_mutation_round_trips(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    on = (await alice.gql_data(SWITCH, {"org": org_id}))["switchActiveAccount"]
    assert on == {"errors": [], "user": {"id": alice.user_id, "activeOrganization": {"id": org_id}}}
    off = (await alice.gql_data(SWITCH, {"org": None}))["switchActiveAccount"]
    assert off["user"]["activeOrganization"] is None


async def test_switch_active_account_mutation_to_a_strangers_org_is_not_found(env: Env) -> None:
    alice, eve = await env.user(), await env.user()
    org_id = await env.organization(alice)
    payload = (await eve.gql_data(SWITCH, {"org": org_id}))["switchActiveAccount"]
    assert payload["errors"][0]["code"] == "NOT_FOUND"
    assert payload["user"] is None


async def test_delete_account_mutation_deletes_the_caller(env: Env) -> None:
    alice = await env.user()
    payload = (await alice.gql_data(DELETE_ACCOUNT))["deleteAccount"]
    assert payload == {"errors": [], "deletedUserId": alice.user_id}
    body = await alice.gql("{ viewer { id } }")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_delete_account_mutation_refuses_the_last_owner(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob)
    payload = (await alice.gql_data(DELETE_ACCOUNT))["deleteAccount"]
    assert payload["errors"][0]["code"] == "CONFLICT"
    assert payload["deletedUserId"] is None
    assert (await alice.gql_data("{ viewer { id } }"))["viewer"]["id"] == alice.user_id


async def test_rest_me_equals_graphql_viewer(env: Env) -> None:
    alice = await env.user(name="Alice")
    await alice.post("/users/me/accept-terms")
    me = (await alice.get("/users/me")).json()["data"]
    viewer = (
        await alice.gql_data(
            "{ viewer { id email displayName photoUrl termsAcceptedAt createdAt updatedAt } }"
        )
    )["viewer"]
    assert {k: me[k] for k in viewer} == viewer


async def test_two_owners_deleting_their_accounts_at_once_leave_one_owner(env: Env) -> None:
    for _ in range(10):
        first, second, member = await env.user(), await env.user(), await env.user()
        org_id = await env.organization(first)
        await env.add_member(org_id, second, "owner")
        await env.add_member(org_id, member)
        responses = await asyncio.gather(first.delete("/users/me"), second.delete("/users/me"))
        assert sorted(r.status_code for r in responses) == [204, 409]
        owners = await env.all(
            select(models.Member).where(
                models.Member.organization_id == org_id, models.Member.role == "owner"
            )
        )
        assert len(owners) == 1
