"""No tenant sees another's data: organizations, the personal account and `node(id:)` are shown
only as `resolvers/permissions.py` allows, whatever the path that reaches them."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from gateway.db import models
from tests.billing.helpers import plan_row
from tests.conftest import Client, Env
from tests.envelopes import assert_refused


async def org_key(env: Env, owner: Client, org_id: str) -> Client:
    """A client authenticated with an API key created for `org_id` by `owner`."""
    response = await owner.post("/api-keys", json={"name": "org", "organizationId": org_id})
    assert response.status_code == 201, response.text
    return env.client(response.json()["data"]["key"], owner.user_id)


async def personal_rows(env: Env, user: Client) -> dict[str, str]:
    """A personal payment, a personal usage and a personal subscription of `user`: their ids."""
    async with env.sessions() as session:
        account = await session.get_one(models.Account, await env.account_id(user_id=user.user_id))
        payment = models.Payment(
            account_id=account.id,
            kind="checkout",
            status="succeeded",
            amount_cents=1000,
            credits=10_000_000,
            creator_user_id=user.user_id,
            provider="sandbox",
            provider_payment_id=f"sandbox_{account.id}",
        )
        usage = models.UsageRecord(
            generation_id=f"gen-{account.id}",
            account_id=account.id,
            user_id=user.user_id,
            model_name="m",
        )
        plan = plan_row(f"solo-{account.id}", "Solo", "individual", 1000)
        session.add_all([payment, usage, plan])
        await session.flush()
        subscription = models.Subscription(account_id=account.id, plan_id=plan.id, status="active")
        session.add(subscription)
        await session.commit()
        return {"pay": payment.id, "usg": usage.id, "sub": subscription.id}


# --- finding 3: a colleague's other organizations ------------------------------------------

COLLEAGUE_ORGS = """
query($id: ID!) {
  user(id: $id) { organizations { organization { id name memberCount defaultRemoteConfig } } }
}"""


async def test_a_colleague_shows_only_the_organizations_the_caller_belongs_to(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    shared = await env.organization(alice, "Shared")
    await env.organization(alice, "Alice's other")
    await env.add_member(shared, bob)
    data = await bob.gql_data(COLLEAGUE_ORGS, {"id": alice.user_id})
    assert [m["organization"]["id"] for m in data["user"]["organizations"]] == [shared]


async def test_a_member_reached_through_a_colleague_shows_only_shared_organizations(
    env: Env,
) -> None:
    alice, bob = await env.user(), await env.user()
    shared = await env.organization(alice, "Shared")
    await env.organization(alice, "Alice's other")
    await env.add_member(shared, bob)
    query = """query($id: ID!) { organization(id: $id) { members { nodes {
        user { id organizations { organizationId organization { id } } } } } } }"""
    data = await bob.gql_data(query, {"id": shared})
    seen = {
        m["organizationId"]
        for node in data["organization"]["members"]["nodes"]
        for m in node["user"]["organizations"]
    }
    assert seen == {shared}


async def test_an_organization_key_shows_only_its_organization_among_the_viewers(
    env: Env,
) -> None:
    alice = await env.user()
    here = await env.organization(alice, "Here")
    await env.organization(alice, "Elsewhere")
    scoped = await org_key(env, alice, here)
    data = await scoped.gql_data("{ viewer { organizations { organization { id } } } }")
    assert [m["organization"]["id"] for m in data["viewer"]["organizations"]] == [here]


async def test_an_organization_key_lists_only_its_organization_on_users_me(env: Env) -> None:
    alice = await env.user()
    here = await env.organization(alice, "Here")
    await env.organization(alice, "Elsewhere")
    scoped = await org_key(env, alice, here)
    response = await scoped.get("/users/me")
    assert response.status_code == 200
    assert [o["organizationId"] for o in response.json()["data"]["organizations"]] == [here]
    assert len((await alice.get("/users/me")).json()["data"]["organizations"]) == 2


async def test_an_organization_key_does_not_show_another_active_organization(env: Env) -> None:
    alice = await env.user()
    here = await env.organization(alice, "Here")
    elsewhere = await env.organization(alice, "Elsewhere")
    assert (
        await alice.put("/users/active-account", json={"organizationId": elsewhere})
    ).status_code == 204
    scoped = await org_key(env, alice, here)
    data = await scoped.gql_data("{ viewer { activeOrganization { id defaultRemoteConfig } } }")
    assert data == {"viewer": {"activeOrganization": None}}


async def test_usage_in_an_organization_left_does_not_show_that_organization(env: Env) -> None:
    alice, owner = await env.user(), await env.user()
    org_id = await env.organization(owner, "Former")
    await env.add_member(org_id, alice)
    async with env.sessions() as session:
        account = await session.get_one(models.Account, await env.account_id(org_id=org_id))
        session.add(
            models.UsageRecord(
                generation_id="gen-left",
                account_id=account.id,
                user_id=alice.user_id,
                organization_id=org_id,
            )
        )
        member = (
            await session.execute(
                select(models.Member).where(models.Member.user_id == alice.user_id)
            )
        ).scalar_one()
        await session.delete(member)
        await session.commit()
    data = await alice.gql_data(
        "{ viewer { usages { nodes { organizationId organization { id name } } } } }"
    )
    assert data["viewer"]["usages"]["nodes"] == [{"organizationId": org_id, "organization": None}]


# --- finding 4: an organization key never reaches its creator's personal account -----------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("DELETE", "/users/me", None),
        ("PATCH", "/users/me", {"displayName": "Mallory"}),
        ("POST", "/users/me/accept-terms", None),
        ("PUT", "/users/active-account", {"organizationId": None}),
        ("POST", "/organizations", {"name": "Escape"}),
        ("POST", "/invites/accept", {"token": "gwi_whatever"}),
    ],
)
async def test_an_organization_key_cannot_change_its_creators_personal_account(
    env: Env, method: str, path: str, body: Any
) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    scoped = await org_key(env, alice, org_id)
    before = (await alice.get("/users/me")).json()["data"]
    response = await scoped.request(method, path, json=body)
    assert_refused(
        response, 403, "This API key belongs to an organization and cannot use a personal account"
    )
    assert (await alice.get("/users/me")).json()["data"] == before
    assert (
        await env.scalar(select(models.Organization.id).where(models.Organization.name == "Escape"))
        is None
    )


@pytest.mark.parametrize(
    ("mutation", "input"),
    [
        ("deleteAccount", None),
        ("acceptTerms", None),
        ("updateProfile", '{displayName: "Mallory"}'),
        ("switchActiveAccount", "{organizationId: null}"),
        ("createOrganization", '{name: "Escape"}'),
        ("acceptInvite", '{token: "gwi_whatever"}'),
    ],
)
async def test_an_organization_key_cannot_run_personal_account_mutations(
    env: Env, mutation: str, input: str | None
) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    scoped = await org_key(env, alice, org_id)
    before = (await alice.get("/users/me")).json()["data"]
    args = f"(input: {input})" if input else ""
    body = await scoped.gql(f"mutation {{ {mutation}{args} {{ errors {{ code }} }} }}")
    assert body.get("data") == {mutation: {"errors": [{"code": "FORBIDDEN"}]}}, body
    assert (await alice.get("/users/me")).json()["data"] == before


# --- finding 6: node(id:) applies the rules of the fields that reach the object ------------


@pytest.mark.parametrize("prefix", ["pay", "usg", "sub"])
async def test_node_with_an_organization_key_hides_the_personal_account(
    env: Env, prefix: str
) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    ids = await personal_rows(env, alice)
    scoped = await org_key(env, alice, org_id)
    query = "query($id: ID!, $ids: [ID!]!) { node(id: $id) { id } nodes(ids: $ids) { id } }"
    variables = {"id": ids[prefix], "ids": [ids[prefix]]}
    assert await scoped.gql_data(query, variables) == {"node": None, "nodes": [None]}
    assert await alice.gql_data(query, variables) == {
        "node": {"id": ids[prefix]},
        "nodes": [{"id": ids[prefix]}],
    }


async def test_node_with_an_organization_key_hides_own_usage_in_another_organization(
    env: Env,
) -> None:
    alice = await env.user()
    here = await env.organization(alice, "Here")
    elsewhere = await env.organization(alice, "Elsewhere")
    async with env.sessions() as session:
        account = await session.get_one(models.Account, await env.account_id(org_id=elsewhere))
        usage = models.UsageRecord(
            generation_id="gen-elsewhere",
            account_id=account.id,
            user_id=alice.user_id,
            organization_id=elsewhere,
        )
        session.add(usage)
        await session.commit()
        usage_id = usage.id
    scoped = await org_key(env, alice, here)
    query = "query($id: ID!) { node(id: $id) { id } }"
    assert await scoped.gql_data(query, {"id": usage_id}) == {"node": None}


# --- finding 10: an admin cannot replace an invite for a role they could not give ----------


async def test_an_admin_cannot_replace_a_pending_owner_invite(env: Env) -> None:
    owner, admin = await env.user(), await env.user()
    org_id = await env.organization(owner)
    await env.add_member(org_id, admin, "admin")
    invite = {"invites": [{"email": "new@example.com", "role": "owner"}]}
    sent = await owner.post(f"/organizations/{org_id}/invites", json=invite)
    assert sent.status_code == 201
    before = await env.all(select(models.Invite))
    again = {"invites": [{"email": "NEW@example.com", "role": "admin"}]}
    response = await admin.post(f"/organizations/{org_id}/invites", json=again)
    assert_refused(response, 403, "You cannot replace an invite for the role owner")
    after = await env.all(select(models.Invite))
    assert [(i.role, i.token_hash, i.invited_by_user_id) for i in after] == [
        (i.role, i.token_hash, i.invited_by_user_id) for i in before
    ]


# --- a refused or missing token is said so, not answered with "nobody" ---------------------


@pytest.mark.parametrize("token", [None, "gwk_000000000000_not-a-real-key"])
@pytest.mark.parametrize("field", ["user", "organization"])
async def test_looking_up_by_id_without_a_valid_token_is_unauthenticated(
    env: Env, token: str | None, field: str
) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    target = alice.user_id if field == "user" else org_id
    body = await env.client(token).gql(f'{{ {field}(id: "{target}") {{ id }} }}')
    assert body["data"] in (None, {field: None})
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


async def test_a_user_shared_only_through_a_deleted_organization_is_not_visible(
    env: Env,
) -> None:
    alice, bob = await env.user(), await env.user()
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob)
    query = "query($id: ID!) { user(id: $id) { id } }"
    assert await bob.gql_data(query, {"id": alice.user_id}) == {"user": {"id": alice.user_id}}
    assert (await alice.delete(f"/organizations/{org_id}")).status_code == 204
    assert await bob.gql_data(query, {"id": alice.user_id}) == {"user": None}
    assert await bob.gql_data(
        "query($id: ID!) { node(id: $id) { id } }", {"id": alice.user_id}
    ) == {"node": None}
