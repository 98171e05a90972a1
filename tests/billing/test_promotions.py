"""Promotions: the operator creates and ends them (service token), accounts list them a page at
a time and redeem them over REST and GraphQL, within a cap that holds under concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gateway.db import models
from tests.billing.promotion_helpers import (
    CREATE,
    END,
    REDEEM,
    balance,
    create,
    redeem,
    service,
)
from tests.conftest import Env
from tests.envelopes import assert_refused, data_of

# --- creating and ending -------------------------------------------------------------------


async def test_service_creates_a_promotion_with_its_defaults(env: Env) -> None:
    before = datetime.now(UTC)
    promotion = await create(env, " welcome-2027 ", 5_000_000, description="Hello")
    assert promotion["code"] == "WELCOME-2027"
    assert promotion["credits"] == 5_000_000
    assert promotion["maxRedemptions"] is None and promotion["redemptionCount"] == 0
    starts = datetime.fromisoformat(promotion["startsAt"])
    expires = datetime.fromisoformat(promotion["expiresAt"])
    assert starts >= before - timedelta(seconds=1)
    assert expires - starts == timedelta(days=env.settings.promotion_default_days)


def _in(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"code": "AB"}, "code", id="code-too-short"),
        pytest.param({"code": "A" * 65}, "code", id="code-too-long"),
        pytest.param({"code": "NO SPACES"}, "code", id="code-with-a-space"),
        pytest.param({"credits": 0}, "credits", id="no-credits"),
        pytest.param({"credits": -5}, "credits", id="negative-credits"),
        pytest.param({"credits": 2**62}, "credits", id="credits-above-the-setting"),
        pytest.param({"expiresAt": _in(-1)}, "expiresAt", id="expiry-in-the-past"),
        pytest.param(
            {"startsAt": _in(5), "expiresAt": _in(3)}, "expiresAt", id="expiry-before-start"
        ),
        pytest.param({"maxRedemptions": 0}, "maxRedemptions", id="cap-of-zero"),
        pytest.param({"description": "x" * 501}, "description", id="description-too-long"),
        pytest.param(
            {"organizationId": "org-01KZZZZZZZZZZZZZZZZZZZZZZZ", "userId": "usr-1"},
            "organizationId",
            id="two-targets",
        ),
    ],
)
async def test_invalid_promotion_is_refused_naming_the_field(
    env: Env, fields: dict[str, Any], field: str
) -> None:
    variables = {"input": {"code": "VALID", "credits": 1_000, **fields}}
    payload = (await service(env).gql_data(CREATE, variables))["createPromotion"]
    assert payload["promotion"] is None
    [error] = payload["errors"]
    assert (error["code"], error["field"]) == ("VALIDATION_FAILED", field)
    assert await env.all(select(models.Promotion)) == []


async def test_a_code_is_created_once(env: Env) -> None:
    await create(env, "ONCE", 1_000)
    variables = {"input": {"code": "once", "credits": 1_000}}
    payload = (await service(env).gql_data(CREATE, variables))["createPromotion"]
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [("CONFLICT", "code")]


async def test_a_promotion_for_an_unknown_organization_is_not_found(env: Env) -> None:
    variables = {
        "input": {"code": "NOORG", "credits": 1, "organizationId": "org-01KZZZZZZZZZZZZZZZZZZZZZZZ"}
    }
    payload = (await service(env).gql_data(CREATE, variables))["createPromotion"]
    assert payload["errors"][0]["code"] == "NOT_FOUND"


async def test_a_users_token_cannot_create_a_promotion(env: Env) -> None:
    alice = await env.user()
    response = await alice.gql(CREATE, {"input": {"code": "MINE", "credits": 1}})
    assert response["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await env.all(select(models.Promotion)) == []


async def test_a_promotion_for_one_organization_is_offered_to_it_only(env: Env) -> None:
    owner, other = await env.user(), await env.user()
    org_id = await env.organization(owner)
    await create(env, "TEAM", 1_000, organizationId=org_id)
    ours = data_of(await owner.get(f"/organizations/{org_id}/promotions"))["items"]
    assert [i["code"] for i in ours] == ["TEAM"]
    assert data_of(await owner.get(f"/users/{owner.user_id}/promotions"))["items"] == []
    assert_refused(await redeem(other, "TEAM"), 404, "Promotion not found")


async def test_an_ended_promotion_can_no_longer_be_redeemed(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    promotion = await create(env, "ENDING", 1_000)
    assert (await redeem(alice, "ENDING")).status_code == 201
    ended = (await service(env).gql_data(END, {"input": {"id": promotion["id"]}}))["endPromotion"]
    assert ended["errors"] == []
    assert datetime.fromisoformat(ended["promotion"]["expiresAt"]) <= datetime.now(UTC)
    assert_refused(await redeem(bob, "ENDING"), 404, "Promotion not found")
    assert data_of(await bob.get(f"/users/{bob.user_id}/promotions"))["items"] == []
    # Alice keeps what she redeemed, until the expiry it came with.
    mine = await balance(alice)
    assert mine["promotionalBalance"] == 1_000
    assert mine["promotionalExpiresAt"] == promotion["expiresAt"]


# --- lists ---------------------------------------------------------------------------------


async def test_promotions_page_newest_first_with_a_cursor(env: Env) -> None:
    alice = await env.user()
    for code in ("FIRST", "SECOND", "THIRD"):
        await create(env, code, 1_000)
    path = f"/users/{alice.user_id}/promotions"
    first = data_of(await alice.get(path, params={"limit": 2}))
    assert [i["code"] for i in first["items"]] == ["THIRD", "SECOND"]
    assert first["nextCursor"]
    rest = data_of(await alice.get(path, params={"limit": 2, "cursor": first["nextCursor"]}))
    assert [i["code"] for i in rest["items"]] == ["FIRST"]
    assert rest["nextCursor"] is None


async def test_promotions_list_refuses_a_bad_cursor(env: Env) -> None:
    alice = await env.user()
    response = await alice.get(f"/users/{alice.user_id}/promotions", params={"cursor": "nope"})
    assert response.status_code == 400


PROMOTIONS_PAGE = """
query($after: String) {
  viewer { billingAccount { promotions(first: 2, after: $after) {
    nodes { code redeemedAt }
    pageInfo { hasNextPage endCursor }
  } } }
}
"""


async def test_billing_account_promotions_are_a_connection(env: Env) -> None:
    alice = await env.user()
    for code in ("FIRST", "SECOND", "THIRD"):
        await create(env, code, 1_000)
    await redeem(alice, "SECOND")
    data = await alice.gql_data(PROMOTIONS_PAGE)
    page = data["viewer"]["billingAccount"]["promotions"]
    assert [n["code"] for n in page["nodes"]] == ["THIRD", "SECOND"]
    assert page["nodes"][1]["redeemedAt"] is not None
    assert page["pageInfo"]["hasNextPage"] is True
    after = page["pageInfo"]["endCursor"]
    data = await alice.gql_data(PROMOTIONS_PAGE, {"after": after})
    page = data["viewer"]["billingAccount"]["promotions"]
    assert [n["code"] for n in page["nodes"]] == ["FIRST"]
    assert page["pageInfo"]["hasNextPage"] is False


# --- redeeming -----------------------------------------------------------------------------


async def test_redeeming_over_rest_answers_the_promotion_payment(env: Env) -> None:
    alice = await env.user()
    await create(env, "RESTY", 2_500_000)
    payment = data_of(await redeem(alice, "resty"), 201)
    assert payment["kind"] == "promotion" and payment["status"] == "succeeded"
    assert payment["credits"] == 2_500_000 and payment["amountCents"] == 0
    assert payment["creatorId"] == alice.user_id
    shown = data_of(await alice.get(f"/users/{alice.user_id}/payments/{payment['id']}"))
    assert shown == payment
    assert (await balance(alice))["balance"] == 2_500_000


async def test_redeeming_twice_is_a_conflict(env: Env) -> None:
    alice = await env.user()
    await create(env, "TWICE", 1_000)
    assert (await redeem(alice, "TWICE")).status_code == 201
    assert_refused(await redeem(alice, "TWICE"), 409, "Promotion already redeemed")
    assert (await balance(alice))["balance"] == 1_000


async def test_redeeming_past_the_cap_is_a_conflict(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    await create(env, "ONLYONE", 1_000, maxRedemptions=1)
    assert (await redeem(alice, "ONLYONE")).status_code == 201
    assert_refused(await redeem(bob, "ONLYONE"), 409, "Promotion fully redeemed")
    assert (await balance(bob))["balance"] == 0
    assert (
        await env.all(select(models.Payment).where(models.Payment.creator_user_id == bob.user_id))
        == []
    )


@pytest.mark.parametrize(
    "body",
    [{}, {"code": ""}, {"code": "X" * 65}, {"code": 5}],
    ids=["missing", "empty", "too-long", "not-a-string"],
)
async def test_redeeming_without_a_valid_code_is_a_bad_request(
    env: Env, body: dict[str, Any]
) -> None:
    alice = await env.user()
    response = await alice.post(f"/users/{alice.user_id}/promotions/redeem", json=body)
    assert response.status_code == 400


async def test_an_organization_redeems_through_its_admins(env: Env) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    admin, member = await env.member(org_id, "admin"), await env.member(org_id, "member")
    await create(env, "ORGS", 3_000)
    assert (await redeem(member, "ORGS", org_id)).status_code == 403
    assert data_of(await redeem(admin, "ORGS", org_id), 201)["credits"] == 3_000
    assert_refused(await redeem(owner, "ORGS", org_id), 409, "Promotion already redeemed")
    assert (await balance(member, org_id))["balance"] == 3_000


async def test_redeeming_replayed_with_its_idempotency_key_answers_the_first_payment(
    env: Env,
) -> None:
    alice = await env.user()
    await create(env, "REPLAY", 1_000)
    path = f"/users/{alice.user_id}/promotions/redeem"
    headers = {"Idempotency-Key": "redeem-1"}
    first = data_of(await alice.post(path, json={"code": "REPLAY"}, headers=headers), 201)
    again = data_of(await alice.post(path, json={"code": "REPLAY"}, headers=headers), 201)
    assert again == first
    assert (await balance(alice))["balance"] == 1_000


async def test_graphql_redemption_answers_the_contracts_errors(env: Env) -> None:
    alice = await env.user()
    await create(env, "GQL", 1_000, maxRedemptions=1)
    first = (await alice.gql_data(REDEEM, {"input": {"code": "gql"}}))["redeemPromotion"]
    assert first["payment"]["kind"] == "PROMOTION"
    again = (await alice.gql_data(REDEEM, {"input": {"code": "GQL"}}))["redeemPromotion"]
    assert [(e["code"], e["message"]) for e in again["errors"]] == [
        ("CONFLICT", "Promotion already redeemed")
    ]
    unknown = (await alice.gql_data(REDEEM, {"input": {"code": "NOPE"}}))["redeemPromotion"]
    assert [(e["code"], e["message"]) for e in unknown["errors"]] == [
        ("NOT_FOUND", "Promotion not found")
    ]


@pytest.mark.settings(database_pool_size=8)
async def test_racing_redemptions_of_the_last_slot_one_wins(env: Env) -> None:
    users = [await env.user() for _ in range(4)]
    await create(env, "LASTONE", 1_000, maxRedemptions=2)
    assert (await redeem(users[0], "LASTONE")).status_code == 201
    responses = await asyncio.gather(*(redeem(u, "LASTONE") for u in users[1:]))
    assert sorted(r.status_code for r in responses) == [201, 409, 409]
    for response in responses:
        if response.status_code == 409:
            assert_refused(response, 409, "Promotion fully redeemed")
    promotion = (await env.all(select(models.Promotion)))[0]
    assert promotion.redemption_count == 2
    assert len(await env.all(select(models.PromotionRedemption))) == 2
    entries = await env.all(select(models.LedgerEntry))
    assert sorted(e.amount for e in entries) == [1_000, 1_000]
