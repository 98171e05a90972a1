"""Payments and credits over GraphQL, and promotions (REST list + GraphQL redeem)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from gateway.db import models
from gateway.db.models import utcnow
from tests.billing.helpers import rest_balance
from tests.conftest import Client, Env

CREDITS_PER_CENT = 10_000

BILLING = """
query {
  viewer {
    balance { amount currency }
    payments(first: 10) { totalCount nodes { id status kind amountCents credits creatorId paidAt failureReason } }
    billingAccount {
      id
      autoTopUp { enabled threshold amountCents }
      defaultPaymentMethod { brand last4 expMonth expYear }
      promotions(first: 10) { nodes { code } }
    }
  }
}
"""

CHECKOUT = """
mutation($input: StartCheckoutInput!) {
  startCheckout(input: $input) {
    errors { code message field }
    checkout { clientSecret checkoutUrl payment { id status amountCents credits kind } }
  }
}
"""

PURCHASE = """
mutation($input: PurchaseCreditsInput!) {
  purchaseCredits(input: $input) {
    errors { code message field }
    payment { id status kind credits failureReason }
  }
}
"""

SETUP = """
mutation($input: StartPaymentMethodSetupInput!) {
  startPaymentMethodSetup(input: $input) {
    errors { code message }
    setup { setupIntentId clientSecret url }
  }
}
"""

AUTO_TOP_UP = """
mutation($input: UpdateAutoTopUpInput!) {
  updateAutoTopUp(input: $input) {
    errors { code message field }
    autoTopUp { enabled threshold amountCents }
  }
}
"""

REDEEM = """
mutation($input: RedeemPromotionInput!) {
  redeemPromotion(input: $input) {
    errors { code message }
    payment { id status kind credits amountCents }
  }
}
"""


async def setup_card(client: Client, org_id: str | None = None) -> None:
    data = await client.gql_data(SETUP, {"input": {"organizationId": org_id}})
    assert data["startPaymentMethodSetup"]["errors"] == []


async def promotion(
    env: Env, code: str, credits: int, *, account_id: str | None = None, active: bool = True
) -> str:
    now = utcnow()
    async with env.sessions() as session:
        promo = models.Promotion(
            code=code,
            description=f"{code} credits",
            credits=credits,
            account_id=account_id,
            starts_at=now - timedelta(days=1),
            expires_at=now + (timedelta(days=7) if active else -timedelta(hours=1)),
        )
        session.add(promo)
        await session.commit()
        return promo.id


async def test_viewer_billing_fields_start_empty(env: Env) -> None:
    alice = await env.user()
    data = (await alice.gql_data(BILLING))["viewer"]
    assert data["balance"] == {"amount": 0, "currency": "usd"}
    assert data["payments"] == {"totalCount": 0, "nodes": []}
    assert data["billingAccount"]["autoTopUp"] == {
        "enabled": False,
        "threshold": 0,
        "amountCents": 0,
    }
    assert data["billingAccount"]["defaultPaymentMethod"] is None


async def test_start_checkout_mutation_credits_the_viewer(env: Env) -> None:
    alice = await env.user()
    data = await alice.gql_data(CHECKOUT, {"input": {"amountCents": 1000}})
    payload = data["startCheckout"]
    assert payload["errors"] == []
    assert payload["checkout"]["payment"]["status"] == "SUCCEEDED"
    assert payload["checkout"]["payment"]["kind"] == "CHECKOUT"
    assert payload["checkout"]["payment"]["credits"] == 1000 * CREDITS_PER_CENT
    assert payload["checkout"]["clientSecret"]
    viewer = (await alice.gql_data(BILLING))["viewer"]
    assert viewer["balance"]["amount"] == 1000 * CREDITS_PER_CENT
    assert [p["id"] for p in viewer["payments"]["nodes"]] == [payload["checkout"]["payment"]["id"]]


async def test_start_checkout_outside_limits_is_a_typed_error(env: Env) -> None:
    alice = await env.user()
    data = await alice.gql_data(CHECKOUT, {"input": {"amountCents": 1}})
    assert data["startCheckout"]["checkout"] is None
    [error] = data["startCheckout"]["errors"]
    assert error["code"] == "VALIDATION_FAILED" and error["field"] == "amountCents"
    assert await env.all(select(models.Payment)) == []


async def test_purchase_without_payment_method_is_unprocessable(env: Env) -> None:
    alice = await env.user()
    data = await alice.gql_data(PURCHASE, {"input": {"amountCents": 1000}})
    [error] = data["purchaseCredits"]["errors"]
    assert error == {"code": "UNPROCESSABLE", "message": "No default payment method", "field": None}


async def test_purchase_after_setup_succeeds_and_decline_fails(env: Env) -> None:
    alice = await env.user()
    await setup_card(alice)
    ok = (await alice.gql_data(PURCHASE, {"input": {"amountCents": 1000}}))["purchaseCredits"]
    assert ok["payment"]["status"] == "SUCCEEDED"
    declined = (await alice.gql_data(PURCHASE, {"input": {"amountCents": 1102}}))["purchaseCredits"]
    assert declined["errors"] == []
    assert declined["payment"]["status"] == "FAILED"
    assert declined["payment"]["failureReason"] == "Your card was declined."
    viewer = (await alice.gql_data(BILLING))["viewer"]
    assert viewer["balance"]["amount"] == 1000 * CREDITS_PER_CENT
    assert viewer["billingAccount"]["defaultPaymentMethod"]["last4"] == "4242"


async def test_succeeded_only_filter(env: Env) -> None:
    alice = await env.user()
    await alice.gql_data(CHECKOUT, {"input": {"amountCents": 1002}})
    await alice.gql_data(CHECKOUT, {"input": {"amountCents": 1000}})
    data = await alice.gql_data(
        "{ viewer { all: payments { nodes { status } } ok: payments(succeededOnly: true)"
        " { nodes { status } } } }"
    )
    assert [p["status"] for p in data["viewer"]["all"]["nodes"]] == ["SUCCEEDED", "FAILED"]
    assert [p["status"] for p in data["viewer"]["ok"]["nodes"]] == ["SUCCEEDED"]


async def test_payment_total_counts_every_page_and_the_filter(env: Env) -> None:
    alice = await env.user()
    for cents in (1000, 1002, 1100):  # 1002 is declined by the sandbox
        await alice.gql_data(CHECKOUT, {"input": {"amountCents": cents}})
    data = await alice.gql_data(
        "{ viewer { all: payments(first: 1) { totalCount nodes { amountCents } }"
        " ok: payments(first: 1, succeededOnly: true) { totalCount } } }"
    )
    assert data["viewer"]["all"] == {"totalCount": 3, "nodes": [{"amountCents": 1100}]}
    assert data["viewer"]["ok"] == {"totalCount": 2}


async def test_organization_payment_total_counts_its_own_payments(env: Env) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    await owner.gql_data(CHECKOUT, {"input": {"amountCents": 900, "organizationId": org_id}})
    await owner.gql_data(CHECKOUT, {"input": {"amountCents": 1000}})  # personal, not counted
    query = """query($id: ID!) { organization(id: $id) {
        all: payments { totalCount } ok: payments(succeededOnly: true) { totalCount } } }"""
    data = await owner.gql_data(query, {"id": org_id})
    assert data["organization"] == {"all": {"totalCount": 1}, "ok": {"totalCount": 1}}


async def test_other_users_billing_fields_are_null(env: Env) -> None:
    owner, member = await env.user(), await env.user()
    org_id = await env.organization(owner)
    await env.add_member(org_id, member)
    data = await owner.gql_data(
        "query($id: ID!) { user(id: $id) { balance { amount } payments { totalCount }"
        " billingAccount { id } } }",
        {"id": member.user_id},
    )
    assert data["user"] == {"balance": None, "payments": None, "billingAccount": None}


async def test_organization_checkout_and_balance_for_members(env: Env) -> None:
    owner, member = await env.user(), await env.user()
    org_id = await env.organization(owner)
    await env.add_member(org_id, member)
    data = await owner.gql_data(CHECKOUT, {"input": {"amountCents": 900, "organizationId": org_id}})
    assert data["startCheckout"]["errors"] == []
    query = "query($id: ID!) { organization(id: $id) { balance { amount } } }"
    seen = await member.gql_data(query, {"id": org_id})
    assert seen["organization"]["balance"]["amount"] == 900 * CREDITS_PER_CENT


async def test_organization_payments_are_forbidden_to_members(env: Env) -> None:
    owner, member = await env.user(), await env.user()
    org_id = await env.organization(owner)
    await env.add_member(org_id, member)
    body = await member.gql(
        "query($id: ID!) { organization(id: $id) { payments { totalCount } } }", {"id": org_id}
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    data = await member.gql_data(
        CHECKOUT, {"input": {"amountCents": 900, "organizationId": org_id}}
    )
    assert data["startCheckout"]["errors"][0]["code"] == "FORBIDDEN"


async def test_update_auto_top_up_mutation(env: Env) -> None:
    alice = await env.user()
    variables = {"input": {"enabled": True, "threshold": 5_000_000, "amountCents": 2000}}
    refused = (await alice.gql_data(AUTO_TOP_UP, variables))["updateAutoTopUp"]
    assert refused["errors"][0]["code"] == "UNPROCESSABLE"
    await setup_card(alice)
    done = (await alice.gql_data(AUTO_TOP_UP, variables))["updateAutoTopUp"]
    assert done == {
        "errors": [],
        "autoTopUp": {"enabled": True, "threshold": 5_000_000, "amountCents": 2000},
    }
    bad = {"input": {"enabled": False, "threshold": -1, "amountCents": 2000}}
    invalid = (await alice.gql_data(AUTO_TOP_UP, bad))["updateAutoTopUp"]
    assert invalid["errors"][0]["field"] == "threshold"


async def test_payment_is_a_node_for_its_owner_only(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    paid = await alice.gql_data(CHECKOUT, {"input": {"amountCents": 1000}})
    pay_id = paid["startCheckout"]["checkout"]["payment"]["id"]
    query = (
        "query($id: ID!) { node(id: $id) { id ... on Payment { amountCents providerDetails"
        " { provider amountReceivedCents } } } }"
    )
    mine = await alice.gql_data(query, {"id": pay_id})
    assert mine["node"]["providerDetails"] == {"provider": "sandbox", "amountReceivedCents": 1000}
    assert (await bob.gql_data(query, {"id": pay_id}))["node"] is None


# --- promotions ---------------------------------------------------------------------------------


async def test_promotions_lists_active_ones_for_the_account(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    alice_account = await env.scalar(
        select(models.Account.id).where(models.Account.user_id == alice.user_id)
    )
    await promotion(env, "WELCOME", 5_000_000)
    await promotion(env, "ALICE", 1_000_000, account_id=alice_account)
    await promotion(env, "OLD", 1_000_000, active=False)
    response = await alice.get(f"/users/{alice.user_id}/promotions")
    assert response.status_code == 200
    items = response.json()["data"]["items"]
    assert sorted(i["code"] for i in items) == ["ALICE", "WELCOME"]
    welcome = next(i for i in items if i["code"] == "WELCOME")
    assert set(welcome) == {
        "id",
        "code",
        "description",
        "credits",
        "startsAt",
        "expiresAt",
        "redeemedAt",
    }
    assert welcome["credits"] == 5_000_000 and welcome["redeemedAt"] is None
    bobs = (await bob.get(f"/users/{bob.user_id}/promotions")).json()["data"]["items"]
    assert [i["code"] for i in bobs] == ["WELCOME"]


async def test_redeeming_a_promotion_credits_once(env: Env) -> None:
    alice = await env.user()
    await promotion(env, "WELCOME", 5_000_000)
    first = (await alice.gql_data(REDEEM, {"input": {"code": "WELCOME"}}))["redeemPromotion"]
    assert first["errors"] == []
    assert first["payment"]["kind"] == "PROMOTION"
    assert first["payment"]["status"] == "SUCCEEDED"
    assert first["payment"]["credits"] == 5_000_000
    again = (await alice.gql_data(REDEEM, {"input": {"code": "WELCOME"}}))["redeemPromotion"]
    assert again["errors"][0]["code"] == "CONFLICT"
    balance = await rest_balance(alice)
    assert balance == 5_000_000
    items = (await alice.get(f"/users/{alice.user_id}/promotions")).json()["data"]["items"]
    assert items[0]["redeemedAt"] is not None
    assert len(await env.all(select(models.LedgerEntry))) == 1


async def test_expired_or_unknown_promotion_is_not_found(env: Env) -> None:
    alice = await env.user()
    await promotion(env, "OLD", 1_000_000, active=False)
    for code in ("OLD", "NOPE"):
        data = (await alice.gql_data(REDEEM, {"input": {"code": code}}))["redeemPromotion"]
        assert data["errors"][0]["code"] == "NOT_FOUND"
    assert await env.all(select(models.LedgerEntry)) == []


async def test_promotion_for_another_account_is_not_found(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    bob_account = await env.scalar(
        select(models.Account.id).where(models.Account.user_id == bob.user_id)
    )
    await promotion(env, "BOBONLY", 1_000_000, account_id=bob_account)
    data = (await alice.gql_data(REDEEM, {"input": {"code": "BOBONLY"}}))["redeemPromotion"]
    assert data["errors"][0]["code"] == "NOT_FOUND"


async def test_purchase_with_idempotency_key_charges_once(env: Env) -> None:
    alice = await env.user()
    await setup_card(alice)
    variables = {"input": {"amountCents": 1000, "idempotencyKey": "gql-buy-1"}}
    first = (await alice.gql_data(PURCHASE, variables))["purchaseCredits"]
    again = (await alice.gql_data(PURCHASE, variables))["purchaseCredits"]
    assert first["errors"] == [] and again["errors"] == []
    assert again["payment"]["id"] == first["payment"]["id"]
    assert len(await env.all(select(models.LedgerEntry))) == 1
    other = {"input": {"amountCents": 2000, "idempotencyKey": "gql-buy-1"}}
    conflict = (await alice.gql_data(PURCHASE, other))["purchaseCredits"]
    assert conflict["errors"][0]["code"] == "CONFLICT"


async def test_checkout_with_idempotency_key_returns_first_checkout(env: Env) -> None:
    alice = await env.user()
    variables = {"input": {"amountCents": 1000, "idempotencyKey": "gql-co-1"}}
    first = (await alice.gql_data(CHECKOUT, variables))["startCheckout"]["checkout"]
    again = (await alice.gql_data(CHECKOUT, variables))["startCheckout"]["checkout"]
    assert again == first
    assert len(await env.all(select(models.Payment))) == 1


ORGANIZATIONS_WITH_PAYMENTS = """{
  viewer {
    organizations {
      organization {
        balance { amount }
        payments(first: 5) { nodes { id amountCents } }
        billingAccount { autoTopUp { enabled } }
      }
    }
  }
}"""


async def _statements(env: Env, client: Client, query: str) -> int:
    await client.gql_data(query)  # warm up: the API key's last-used stamp
    with env.counter.counting() as statements:
        await client.gql_data(query)
    return len(statements)


async def test_organization_payments_cost_the_same_for_2_and_6_organizations(env: Env) -> None:
    counts = []
    for size in (2, 6):
        owner = await env.user()
        for i in range(size):
            org_id = await env.organization(owner, name=f"Org {i}")
            for amount in (600, 700):
                variables = {"input": {"amountCents": amount, "organizationId": org_id}}
                await owner.gql_data(CHECKOUT, variables)
        data = await owner.gql_data(ORGANIZATIONS_WITH_PAYMENTS)
        orgs = [m["organization"] for m in data["viewer"]["organizations"]]
        assert len(orgs) == size
        assert all(len(o["payments"]["nodes"]) == 2 for o in orgs)
        assert all(o["balance"]["amount"] == 1300 * CREDITS_PER_CENT for o in orgs)
        counts.append(await _statements(env, owner, ORGANIZATIONS_WITH_PAYMENTS))
    assert counts[0] == counts[1], counts


async def test_payments_of_a_user_without_an_account_yet_are_an_empty_page(env: Env) -> None:
    alice = await env.user()
    async with env.sessions() as session:
        await session.execute(
            models.Account.__table__.delete().where(models.Account.user_id == alice.user_id)
        )
        await session.commit()
    data = await alice.gql_data("{ viewer { payments { nodes { id } pageInfo { hasNextPage } } } }")
    assert data["viewer"]["payments"] == {"nodes": [], "pageInfo": {"hasNextPage": False}}
    # Reading payments makes no account; asking for the balance still does, as before.
    assert (
        await env.all(select(models.Account).where(models.Account.user_id == alice.user_id)) == []
    )
    balance = await alice.gql_data("{ viewer { balance { amount } } }")
    assert balance["viewer"]["balance"]["amount"] == 0


ORGANIZATIONS_HISTORIES = """{
  viewer {
    organizations {
      organization {
        name
        payments(first: 5) { nodes { amountCents } }
        planHistory(first: 5) { nodes { action } }
      }
    }
  }
}"""

ORGANIZATION_HISTORIES = """query ($id: ID!) {
  organization(id: $id) {
    payments(first: 5) { nodes { amountCents } }
    planHistory(first: 5) { nodes { action } }
  }
}"""


async def test_organizations_without_an_account_yet_have_empty_payment_and_plan_pages(
    env: Env,
) -> None:
    """Organizations' pages find their account in their own statement (one organization) or
    through their accounts' rows (several): one without an account has empty pages, beside
    one with payments, and asking creates no account."""
    owner = await env.user()
    paying = await env.organization(owner, name="Paying")
    for amount in (600, 700):
        variables = {"input": {"amountCents": amount, "organizationId": paying}}
        await owner.gql_data(CHECKOUT, variables)
    bare = await env.organization(owner, name="Bare")
    async with env.sessions() as session:
        await session.execute(
            models.Account.__table__.delete().where(models.Account.organization_id == bare)
        )
        await session.commit()
    data = await owner.gql_data(ORGANIZATIONS_HISTORIES)
    pages = {m["organization"]["name"]: m["organization"] for m in data["viewer"]["organizations"]}
    assert sorted(n["amountCents"] for n in pages["Paying"]["payments"]["nodes"]) == [600, 700]
    assert pages["Bare"] == {
        "name": "Bare",
        "payments": {"nodes": []},
        "planHistory": {"nodes": []},
    }
    alone = await owner.gql_data(ORGANIZATION_HISTORIES, {"id": bare})
    assert alone["organization"] == {"payments": {"nodes": []}, "planHistory": {"nodes": []}}
    accounts = await env.all(select(models.Account).where(models.Account.organization_id == bare))
    assert accounts == []
