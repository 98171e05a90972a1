"""Balances, payments, checkout, purchase, payment methods and auto top-up over REST (sandbox)."""

from __future__ import annotations

import re

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from gateway.billing.ledger import sum_of_entries
from gateway.db import models
from gateway.settings import Settings
from tests.billing.helpers import rest_balance
from tests.conftest import Client, Env
from tests.envelopes import assert_refused, data_of

CHECKOUT_KEYS = {"paymentId", "status", "amountCents", "credits", "clientSecret", "checkoutUrl"}
PAYMENT_KEYS = {
    "id",
    "status",
    "kind",
    "amountCents",
    "credits",
    "currency",
    "creatorId",
    "createdAt",
    "paidAt",
    "failureReason",
}

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
CREDITS_PER_CENT = 10_000


async def assert_ledger_consistent(env: Env, account_id: str) -> None:
    async with env.sessions() as session:
        balance = await session.scalar(
            select(models.Account.balance).where(models.Account.id == account_id)
        )
        assert balance == await sum_of_entries(session, account_id)


async def save_card(client: Client, base: str) -> None:
    response = await client.post(f"{base}/payment-method/setup-session", json={})
    assert response.status_code == 201, response.text


async def user_with_card(env: Env) -> Client:
    """A user with a saved default card."""
    alice = await env.user()
    await save_card(alice, f"/users/{alice.user_id}")
    return alice


async def purchase(client: Client, amount_cents: int) -> httpx.Response:
    """`POST /users/{id}/credits/purchase`: charge the default card."""
    path = f"/users/{client.user_id}/credits/purchase"
    return await client.post(path, json={"amountCents": amount_cents})


# --- balance --------------------------------------------------------------------------------


async def test_user_balance_has_contract_shape(env: Env) -> None:
    alice = await env.user()
    response = await alice.get(f"/users/{alice.user_id}/balance")
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "data": {
            "balance": 0,
            "userId": alice.user_id,
            "promotionalBalance": 0,
            "promotionalExpiresAt": None,
        },
    }


async def test_another_users_balance_is_not_found(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    response = await alice.get(f"/users/{bob.user_id}/balance")
    assert response.status_code == 404
    assert response.json()["success"] is False


async def test_organization_balance_is_readable_by_any_member(env: Env) -> None:
    owner, member = await env.user(), await env.user()
    org_id = await env.organization(owner)
    await env.add_member(org_id, member, "member")
    response = await member.get(f"/organizations/{org_id}/balance")
    assert response.status_code == 200
    assert response.json()["data"] == {
        "balance": 0,
        "organizationId": org_id,
        "promotionalBalance": 0,
        "promotionalExpiresAt": None,
    }


async def test_organization_balance_is_not_found_for_strangers(env: Env) -> None:
    owner, stranger = await env.user(), await env.user()
    org_id = await env.organization(owner)
    response = await stranger.get(f"/organizations/{org_id}/balance")
    assert response.status_code == 404


async def test_balance_needs_authentication(env: Env) -> None:
    alice = await env.user()
    response = await env.anonymous.get(f"/users/{alice.user_id}/balance")
    assert response.status_code == 401


# --- authorization of organization money routes ---------------------------------------------


async def test_members_may_not_use_organization_money_routes(env: Env) -> None:
    owner, member = await env.user(), await env.user()
    org_id = await env.organization(owner)
    await env.add_member(org_id, member, "member")
    base = f"/organizations/{org_id}"
    for method, path, body in [
        ("GET", f"{base}/payments", None),
        ("GET", f"{base}/auto-top-up", None),
        ("GET", f"{base}/promotions", None),
        ("GET", f"{base}/payment-method/default", None),
        ("POST", f"{base}/credits/checkout", {"amountCents": 1000}),
        ("POST", f"{base}/credits/purchase", {"amountCents": 1000}),
        ("POST", f"{base}/payment-method/setup-session", {}),
    ]:
        response = await member.request(method, path, json=body)
        assert response.status_code == 403, (path, response.text)


async def test_admins_may_use_organization_money_routes(env: Env) -> None:
    owner, admin = await env.user(), await env.user()
    org_id = await env.organization(owner)
    await env.add_member(org_id, admin, "admin")
    response = await admin.post(
        f"/organizations/{org_id}/credits/checkout", json={"amountCents": 1000}
    )
    assert response.status_code == 201, response.text
    assert (await admin.get(f"/organizations/{org_id}/payments")).status_code == 200


async def test_other_users_payment_routes_are_not_found(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    for path in ("payments", "auto-top-up", "promotions", "payment-method/default"):
        response = await alice.get(f"/users/{bob.user_id}/{path}")
        assert response.status_code == 404, path
    response = await alice.post(
        f"/users/{bob.user_id}/credits/purchase", json={"amountCents": 1000}
    )
    assert response.status_code == 404


# --- checkout -------------------------------------------------------------------------------


async def test_checkout_creates_payment_and_credits_once(env: Env) -> None:
    alice = await env.user()
    response = await alice.post("/users/credits/checkout", json={"amountCents": 2500})
    data = data_of(response, 201)
    assert set(data) == CHECKOUT_KEYS
    assert data["paymentId"].startswith("pay-")
    assert data["amountCents"] == 2500
    assert data["credits"] == 2500 * CREDITS_PER_CENT
    assert data["status"] == "succeeded"
    assert isinstance(data["clientSecret"], str)
    balance = await rest_balance(alice)
    assert balance == 2500 * CREDITS_PER_CENT
    entries = await env.all(select(models.LedgerEntry))
    assert [e.idempotency_key for e in entries] == [f"payment:{data['paymentId']}"]


async def test_checkout_outside_limits_is_rejected(env: Env) -> None:
    alice = await env.user()
    low = env.settings.checkout_min_cents - 1
    high = env.settings.checkout_max_cents + 1
    for amount in (low, high, 0, -5):
        response = await alice.post("/users/credits/checkout", json={"amountCents": amount})
        assert response.status_code == 400, amount
        assert "amountCents" in response.json()["error"]
    assert await env.all(select(models.Payment)) == []


async def test_checkout_rejects_non_integer_amount(env: Env) -> None:
    alice = await env.user()
    for amount in ("1000", 10.5, None, True):
        response = await alice.post("/users/credits/checkout", json={"amountCents": amount})
        assert response.status_code == 400, amount


async def test_declined_checkout_is_failed_and_credits_nothing(env: Env) -> None:
    alice = await env.user()
    response = await alice.post("/users/credits/checkout", json={"amountCents": 1002})
    data = data_of(response, 201)
    assert data["status"] == "failed"
    payment = (await alice.get(f"/users/{alice.user_id}/payments/{data['paymentId']}")).json()
    assert payment["data"]["failureReason"]
    assert await rest_balance(alice) == 0


async def test_organization_checkout_credits_the_organization(env: Env) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    response = await owner.post(
        f"/organizations/{org_id}/credits/checkout", json={"amountCents": 700}
    )
    assert response.status_code == 201
    org_balance = (await owner.get(f"/organizations/{org_id}/balance")).json()["data"]
    assert org_balance["balance"] == 700 * CREDITS_PER_CENT
    mine = (await owner.get(f"/users/{owner.user_id}/balance")).json()["data"]
    assert mine["balance"] == 0


async def test_checkout_rejects_non_http_urls(env: Env) -> None:
    alice = await env.user()
    response = await alice.post(
        "/users/credits/checkout", json={"amountCents": 1000, "successUrl": "javascript:x"}
    )
    assert response.status_code == 400
    assert "successUrl" in response.json()["error"]


# --- payment methods and purchase -----------------------------------------------------------


async def test_purchase_without_default_method_is_422(env: Env) -> None:
    alice = await env.user()
    response = await alice.post(
        f"/users/{alice.user_id}/credits/purchase", json={"amountCents": 1000}
    )
    assert_refused(response, 422, "No default payment method")
    assert await env.all(select(models.Payment)) == []


async def test_default_payment_method_is_404_until_saved(env: Env) -> None:
    alice = await env.user()
    response = await alice.get(f"/users/{alice.user_id}/payment-method/default")
    assert response.status_code == 404
    assert response.json()["error"] == "No default payment method"


async def test_setup_session_saves_a_default_card(env: Env) -> None:
    alice = await env.user()
    response = await alice.post(f"/users/{alice.user_id}/payment-method/setup-session", json={})
    data = data_of(response, 201)
    assert set(data) == {"setupIntentId", "clientSecret", "url"}
    assert data["clientSecret"]
    card = (await alice.get(f"/users/{alice.user_id}/payment-method/default")).json()["data"]
    assert set(card) == {"id", "brand", "last4", "expMonth", "expYear"}
    assert card["last4"] == "4242" and card["brand"] == "visa"
    assert isinstance(card["expMonth"], int) and isinstance(card["expYear"], int)


async def test_purchase_charges_default_method(env: Env) -> None:
    alice = await user_with_card(env)
    response = await purchase(alice, 1500)
    payment = data_of(response, 201)
    assert set(payment) == PAYMENT_KEYS
    assert payment["status"] == "succeeded"
    assert payment["kind"] == "purchase"
    assert payment["creatorId"] == alice.user_id
    assert payment["currency"] == "usd"
    assert TS.match(payment["createdAt"]) and TS.match(payment["paidAt"])
    assert payment["failureReason"] is None
    balance = await rest_balance(alice)
    assert balance == 1500 * CREDITS_PER_CENT
    await assert_ledger_consistent(env, await env.account_id(user_id=alice.user_id))


async def test_declined_purchase_is_failed_payment_with_reason(env: Env) -> None:
    alice = await user_with_card(env)
    response = await purchase(alice, 2002)
    payment = data_of(response, 201)
    assert payment["status"] == "failed"
    assert payment["failureReason"] == "Your card was declined."
    assert payment["paidAt"] is None
    assert await rest_balance(alice) == 0
    assert await env.all(select(models.LedgerEntry)) == []


async def test_purchase_outside_limits_is_400(env: Env) -> None:
    alice = await user_with_card(env)
    response = await purchase(alice, 1)
    assert response.status_code == 400


# --- history --------------------------------------------------------------------------------


async def test_payment_history_lists_succeeded_newest_first(env: Env) -> None:
    alice = await user_with_card(env)
    base = f"/users/{alice.user_id}"
    first = (await purchase(alice, 1000)).json()
    await purchase(alice, 1002)  # declined
    second = (await purchase(alice, 3000)).json()
    response = await alice.get(f"{base}/payments")
    data = data_of(response)
    items = data["paymentTransactions"]
    assert [i["id"] for i in items] == [second["data"]["id"], first["data"]["id"]]
    assert set(items[0]) == {"paidAt", "creatorId", "amountCents", "credits", "id", "status"}
    assert items[0]["amountCents"] == 3000
    assert items[0]["credits"] == 3000 * CREDITS_PER_CENT
    assert items[0]["creatorId"] == alice.user_id
    assert items[0]["status"] == "succeeded"
    assert TS.match(items[0]["paidAt"])
    assert data["nextCursor"] is None


async def test_payment_history_pages_with_cursor(env: Env) -> None:
    alice = await env.user()
    for amount in (1000, 1100, 1200):
        await alice.post("/users/credits/checkout", json={"amountCents": amount})
    page1 = (await alice.get(f"/users/{alice.user_id}/payments?limit=2")).json()["data"]
    assert [i["amountCents"] for i in page1["paymentTransactions"]] == [1200, 1100]
    cursor = page1["nextCursor"]
    page2 = (await alice.get(f"/users/{alice.user_id}/payments?limit=2&cursor={cursor}")).json()
    assert [i["amountCents"] for i in page2["data"]["paymentTransactions"]] == [1000]
    assert page2["data"]["nextCursor"] is None


async def test_payment_details_status_and_provider_view(env: Env) -> None:
    alice = await user_with_card(env)
    base = f"/users/{alice.user_id}"
    payment = (await purchase(alice, 1200)).json()
    pay_id = payment["data"]["id"]
    details = (await alice.get(f"{base}/payments/{pay_id}")).json()["data"]
    assert details == payment["data"]
    status = (await alice.get(f"{base}/payments/{pay_id}/status")).json()["data"]
    assert set(status) == {"id", "status", "updatedAt"}
    assert status["id"] == pay_id and status["status"] == "succeeded"
    assert TS.match(status["updatedAt"])
    view = (await alice.get(f"{base}/payments/provider/{pay_id}")).json()["data"]
    assert view == {
        "provider": "sandbox",
        "providerPaymentId": f"sbx_pi_{pay_id}",
        "status": "succeeded",
        "amountReceivedCents": 1200,
        "currency": "usd",
        "paymentMethod": {"brand": "visa", "last4": "4242"},
        "receiptUrl": None,
    }


async def test_another_accounts_payment_is_not_found(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    paid = (await alice.post("/users/credits/checkout", json={"amountCents": 1000})).json()
    pay_id = paid["data"]["paymentId"]
    for suffix in ("", "/status"):
        response = await bob.get(f"/users/{bob.user_id}/payments/{pay_id}{suffix}")
        assert response.status_code == 404
    response = await bob.get(f"/users/{bob.user_id}/payments/provider/{pay_id}")
    assert response.status_code == 404
    owner = await env.user()
    org_id = await env.organization(owner)
    response = await owner.get(f"/organizations/{org_id}/payments/{pay_id}")
    assert response.status_code == 404


# --- auto top-up ----------------------------------------------------------------------------


async def test_auto_top_up_defaults_to_disabled(env: Env) -> None:
    alice = await env.user()
    response = await alice.get(f"/users/{alice.user_id}/auto-top-up")
    assert response.status_code == 200
    assert response.json()["data"] == {"enabled": False, "threshold": 0, "amountCents": 0}


async def test_auto_top_up_validation(env: Env) -> None:
    alice = await env.user()
    path = f"/users/{alice.user_id}/auto-top-up"
    bad = [
        {"enabled": False, "threshold": 0, "amountCents": 0},
        {"enabled": False, "threshold": -1, "amountCents": 1000},
        {"enabled": False, "threshold": 0},
        {"enabled": "yes", "threshold": 0, "amountCents": 1000},
    ]
    for body in bad:
        response = await alice.put(path, json=body)
        assert response.status_code == 400, body


async def test_enabling_auto_top_up_needs_default_method(env: Env) -> None:
    alice = await env.user()
    body = {"enabled": True, "threshold": 1_000_000, "amountCents": 2000}
    response = await alice.put(f"/users/{alice.user_id}/auto-top-up", json=body)
    assert response.status_code == 422
    assert "No default payment method" in response.json()["error"]


async def test_auto_top_up_settings_are_saved(env: Env) -> None:
    alice = await user_with_card(env)
    base = f"/users/{alice.user_id}"
    body = {"enabled": True, "threshold": 1_000_000, "amountCents": 2000}
    response = await alice.put(f"{base}/auto-top-up", json=body)
    assert response.status_code == 200
    assert response.json()["data"] == body
    assert (await alice.get(f"{base}/auto-top-up")).json()["data"] == body


async def test_sandbox_hosted_checkout_returns_to_the_success_url(env: Env) -> None:
    alice = await env.user()
    body = {"amountCents": 1000, "successUrl": "https://app.example.com/ok"}
    data = (await alice.post("/users/credits/checkout", json=body)).json()["data"]
    assert data["checkoutUrl"] == "https://app.example.com/ok"
    assert data["clientSecret"] is None
    assert data["status"] == "succeeded"


def test_production_refuses_the_sandbox_unless_allowed() -> None:
    with pytest.raises(ValidationError, match="sandbox is refused in production"):
        Settings(environment="production", payments_provider="sandbox")
    allowed = Settings(
        environment="production", payments_provider="sandbox", allow_sandbox_in_production=True
    )
    assert allowed.payments_provider == "sandbox"
