"""REST and GraphQL read the same resolvers: for the same object, the same data."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client, Env
from tests.envelopes import data_of
from tests.usage.helpers import event, ingest_ok


@pytest.fixture
async def world(env: Env) -> dict[str, Any]:
    """An owner with an organization of three, credits bought, and usage recorded."""
    owner = await env.user("owner@example.com", "Olive Owner")
    admin = await env.user("admin@example.com", "Adam Admin")
    member = await env.user("member@example.com", "Mia Member")
    org_id = await env.organization(owner, "Parity Inc")
    await env.add_member(org_id, admin, "admin")
    await env.add_member(org_id, member, "member")
    for amount in (1000, 2500):
        data_of(await owner.post("/users/credits/checkout", json={"amountCents": amount}), 201)
    await ingest_ok(
        env,
        event(owner.user_id, generationId="gen_p1", credits=1_000),
        event(owner.user_id, organizationId=org_id, generationId="gen_p2", credits=3_000),
        event(member.user_id, organizationId=org_id, generationId="gen_p3", credits=500),
    )
    return {"owner": owner, "admin": admin, "member": member, "org_id": org_id}


async def viewer_nodes(client: Client, connection: str, selection: str) -> list[dict[str, Any]]:
    """The nodes of the viewer's `connection` (a field with its arguments), with `selection`."""
    field = connection.split("(")[0]
    data = await client.gql_data(f"{{ viewer {{ {connection} {{ nodes {{ {selection} }} }} }} }}")
    nodes: list[dict[str, Any]] = data["viewer"][field]["nodes"]
    return nodes


async def test_me_equals_viewer(world: dict[str, Any]) -> None:
    owner: Client = world["owner"]
    rest = data_of(await owner.get("/users/me"))
    gql = (
        await owner.gql_data(
            "{ viewer { id email displayName photoUrl termsAcceptedAt createdAt updatedAt"
            " organizations { id role organization { id name } } } }"
        )
    )["viewer"]
    assert {k: rest[k] for k in ("id", "email", "displayName", "photoUrl", "termsAcceptedAt")} == {
        k: gql[k] for k in ("id", "email", "displayName", "photoUrl", "termsAcceptedAt")
    }
    assert (rest["createdAt"], rest["updatedAt"]) == (gql["createdAt"], gql["updatedAt"])
    assert [
        (o["organizationId"], o["memberId"], o["name"], o["roles"]) for o in rest["organizations"]
    ] == [
        (m["organization"]["id"], m["id"], m["organization"]["name"], [m["role"].lower()])
        for m in gql["organizations"]
    ]


async def test_organization_equals_graphql_organization(world: dict[str, Any]) -> None:
    member: Client = world["member"]
    org_id = world["org_id"]
    rest = data_of(await member.get(f"/organizations/{org_id}"))
    gql = (
        await member.gql_data(
            "query($id: ID!) { organization(id: $id) { id name createdAt updatedAt memberCount"
            " remoteConfigEnabled defaultRemoteConfig externalOrganizationId } }",
            {"id": org_id},
        )
    )["organization"]
    assert rest == gql


async def test_members_equal_graphql_members(world: dict[str, Any]) -> None:
    admin: Client = world["admin"]
    org_id = world["org_id"]
    rest = data_of(await admin.get(f"/organizations/{org_id}/members"))["items"]
    gql = (
        await admin.gql_data(
            "query($id: ID!) { organization(id: $id) { members(first: 100) { nodes"
            " { id userId organizationId role createdAt user { email displayName } } } } }",
            {"id": org_id},
        )
    )["organization"]["members"]["nodes"]
    as_rest = [
        {
            "id": m["id"],
            "userId": m["userId"],
            "organizationId": m["organizationId"],
            "email": m["user"]["email"],
            "displayName": m["user"]["displayName"],
            "role": m["role"].lower(),
            "createdAt": m["createdAt"],
        }
        for m in gql
    ]
    assert sorted(rest, key=lambda m: m["id"]) == sorted(as_rest, key=lambda m: m["id"])


async def test_balances_equal_graphql_balances(world: dict[str, Any]) -> None:
    owner: Client = world["owner"]
    org_id = world["org_id"]
    personal = data_of(await owner.get(f"/users/{owner.user_id}/balance"))
    organization = data_of(await owner.get(f"/organizations/{org_id}/balance"))
    gql = await owner.gql_data(
        "query($id: ID!) { viewer { balance { ...B } } organization(id: $id) { balance { ...B } } }"
        " fragment B on Balance { amount promotionalAmount promotionalExpiresAt }",
        {"id": org_id},
    )

    def rest(balance: dict[str, Any]) -> dict[str, Any]:
        return {
            "balance": balance["amount"],
            "promotionalBalance": balance["promotionalAmount"],
            "promotionalExpiresAt": balance["promotionalExpiresAt"],
        }

    assert personal == {**rest(gql["viewer"]["balance"]), "userId": owner.user_id}
    assert organization == {**rest(gql["organization"]["balance"]), "organizationId": org_id}
    assert personal["balance"] == 3_500 * 10_000 - 1_000


PAYMENT_FIELDS = "id paidAt amountCents credits creatorId"
USAGE_FIELDS = (
    "id generationId modelName promptTokens completionTokens totalTokens costUsd creditsUsed"
    " organizationId createdAt"
)


def columns(items: list[dict[str, Any]], fields: str) -> list[tuple[Any, ...]]:
    """Each item's values of the space-separated `fields`, in order."""
    return [tuple(item[name] for name in fields.split()) for item in items]


async def test_payments_equal_graphql_payments(world: dict[str, Any]) -> None:
    owner: Client = world["owner"]
    rest = data_of(await owner.get(f"/users/{owner.user_id}/payments"))["paymentTransactions"]
    gql = await viewer_nodes(owner, "payments(first: 50, succeededOnly: true)", PAYMENT_FIELDS)
    assert columns(rest, PAYMENT_FIELDS) == columns(gql, PAYMENT_FIELDS)
    assert [p["amountCents"] for p in rest] == [2500, 1000]


async def test_user_usages_equal_graphql_usages(world: dict[str, Any]) -> None:
    owner: Client = world["owner"]
    rest = data_of(await owner.get(f"/users/{owner.user_id}/usages"))["items"]
    gql = await viewer_nodes(owner, "usages(first: 50)", USAGE_FIELDS)
    # REST names the model `aiModelName`, and a personal usage's organization "" rather than null
    as_graphql = [
        {**u, "modelName": u["aiModelName"], "organizationId": u["organizationId"] or None}
        for u in rest
    ]
    assert columns(as_graphql, USAGE_FIELDS) == columns(gql, USAGE_FIELDS)
    assert [u["generationId"] for u in rest] == ["gen_p2", "gen_p1"]


async def test_plans_equal_graphql_plans(env: Env) -> None:
    from resolvers.plan_catalog import seed_plans

    async with env.sessions() as session:
        await seed_plans(session)
        await session.commit()
    alice = await env.user()
    rest = data_of(await alice.get("/plans"))
    gql = (
        await alice.gql_data(
            "{ plans { id name displayName type interval pricePerSeatCents features } }"
        )
    )["plans"]
    assert len(rest) == len(gql) > 0
    assert [(p["id"], p["name"], p["pricePerSeatCents"]) for p in rest] == [
        (p["id"], p["name"], p["pricePerSeatCents"]) for p in gql
    ]


async def test_active_account_follows_switch_active_account(world: dict[str, Any]) -> None:
    member: Client = world["member"]
    org_id = world["org_id"]
    query = "{ viewer { activeAccount { organization { id } balance { amount } } } }"
    personal = (await member.gql_data(query))["viewer"]["activeAccount"]
    assert personal["organization"] is None
    response = await member.put("/users/active-account", json={"organizationId": org_id})
    assert response.status_code == 204
    active = (await member.gql_data(query))["viewer"]["activeAccount"]
    org_balance = data_of(await member.get(f"/organizations/{org_id}/balance"))["balance"]
    assert active == {"organization": {"id": org_id}, "balance": {"amount": org_balance}}
