"""The stripe provider against localstripe (a stateful fake Stripe server on 127.0.0.1).

The tests play the parts Stripe.js and Stripe's webhooks play in production: they confirm
SetupIntents and PaymentIntents with the SDK, then deliver the resulting objects as signed
webhook events. localstripe lacks Checkout Sessions, Prices and Idempotency-Key; its decline
card 4000000000000002 fails at attach time, so charge-time declines use 4000000000000341.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import stripe
from sqlalchemy import select

from gateway.billing.payments import maybe_auto_top_up
from gateway.billing.providers import build_payment_provider
from gateway.billing.refunds import refund_payment
from gateway.db import models
from tests.billing.helpers import SECRET, deliver, event, rest_balance
from tests.conftest import Client, Env
from tests.envelopes import data_of

API_KEY = "sk_test_gateway"
pytestmark = pytest.mark.settings(
    payments_provider="stripe", stripe_api_key=API_KEY, stripe_webhook_secret=SECRET
)
VISA = "4242424242424242"
DECLINED_AT_CHARGE = "4000000000000341"


@pytest.fixture(autouse=True)
def _stripe_at_localstripe(monkeypatch: pytest.MonkeyPatch, localstripe: str) -> None:
    # Read by Settings for the env fixture (its base URL is only known at run time).
    monkeypatch.setenv("GATEWAY_STRIPE_API_BASE", localstripe)


@pytest.fixture
async def sdk(localstripe: str) -> AsyncIterator[stripe.StripeClient]:
    http = stripe.HTTPXClient()
    yield stripe.StripeClient(API_KEY, base_addresses={"api": localstripe}, http_client=http)
    await http.close_async()


async def assert_credited_once(env: Env, client: Client, amount_cents: int) -> None:
    """The client's balance holds the credits of `amount_cents`, from one ledger entry."""
    assert await rest_balance(client) == amount_cents * 10_000
    assert len(await env.all(select(models.LedgerEntry))) == 1


def checkout_session(
    checkout: dict[str, Any], status: str, payment_status: str, **fields: Any
) -> dict[str, Any]:
    """The Checkout Session behind our `checkout` answer, as Stripe's events carry it."""
    return {
        "id": checkout["checkoutUrl"].rsplit("/", 1)[1],
        "object": "checkout.session",
        "mode": "payment",
        "status": status,
        "payment_status": payment_status,
        **fields,
        "metadata": {"payment_id": checkout["paymentId"]},
    }


async def account_of(env: Env, client: Client) -> models.Account:
    found: models.Account = await env.scalar(
        select(models.Account).where(models.Account.user_id == client.user_id)
    )
    return found


async def save_card(
    env: Env, sdk: stripe.StripeClient, user: Client, number: str = VISA
) -> dict[str, Any]:
    """Start a setup session, confirm it as Stripe.js would, deliver Stripe's webhook."""
    response = await user.post(f"/users/{user.user_id}/payment-method/setup-session", json={})
    assert response.status_code == 201, response.text
    setup_id = response.json()["data"]["setupIntentId"]
    method = await sdk.v1.payment_methods.create_async(
        {
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    intent = await sdk.v1.setup_intents.confirm_async(setup_id, {"payment_method": method.id})
    await sdk.v1.payment_methods.attach_async(method.id, {"customer": str(intent.customer)})
    delivered = await deliver(env, event("setup_intent.succeeded", intent.to_dict()))
    assert delivered.status_code == 200
    return intent.to_dict()


async def test_setup_session_creates_customer_and_setup_intent(
    env: Env, sdk: stripe.StripeClient
) -> None:
    alice = await env.user("alice@example.com")
    response = await alice.post(f"/users/{alice.user_id}/payment-method/setup-session", json={})
    data = data_of(response, 201)
    assert data["setupIntentId"].startswith("seti_")
    assert data["clientSecret"].startswith(data["setupIntentId"])
    assert data["url"] is None
    account = await account_of(env, alice)
    assert account.provider_customer_id and account.provider_customer_id.startswith("cus_")
    customer = await sdk.v1.customers.retrieve_async(account.provider_customer_id)
    assert customer.metadata["account_id"] == account.id
    assert customer.email == "alice@example.com"


async def test_customer_is_created_once_per_account(env: Env, sdk: stripe.StripeClient) -> None:
    alice = await env.user()
    for _ in range(2):
        await alice.post(f"/users/{alice.user_id}/payment-method/setup-session", json={})
    first = (await account_of(env, alice)).provider_customer_id
    await alice.post(f"/users/{alice.user_id}/payment-method/setup-session", json={})
    assert (await account_of(env, alice)).provider_customer_id == first


async def test_saved_card_becomes_default_here_and_at_stripe(
    env: Env, sdk: stripe.StripeClient
) -> None:
    alice = await env.user()
    intent = await save_card(env, sdk, alice)
    account = await account_of(env, alice)
    assert account.default_payment_method_id == intent["payment_method"]
    customer = await sdk.v1.customers.retrieve_async(str(account.provider_customer_id))
    assert customer.invoice_settings.default_payment_method == intent["payment_method"]
    card = (await alice.get(f"/users/{alice.user_id}/payment-method/default")).json()["data"]
    assert card == {
        "id": intent["payment_method"],
        "brand": "visa",
        "last4": "4242",
        "expMonth": 12,
        "expYear": 2034,
    }


async def test_purchase_charges_off_session_and_credits(env: Env, sdk: stripe.StripeClient) -> None:
    alice = await env.user()
    await save_card(env, sdk, alice)
    base = f"/users/{alice.user_id}"
    response = await alice.post(f"{base}/credits/purchase", json={"amountCents": 1500})
    payment = data_of(response, 201)
    assert payment["status"] == "succeeded"
    assert await rest_balance(alice) == 1500 * 10_000
    row: models.Payment = await env.scalar(
        select(models.Payment).where(models.Payment.id == payment["id"])
    )
    intent = await sdk.v1.payment_intents.retrieve_async(str(row.provider_payment_id))
    assert intent.status == "succeeded" and intent.amount == 1500
    assert intent.metadata["payment_id"] == payment["id"]
    view = (await alice.get(f"{base}/payments/provider/{payment['id']}")).json()["data"]
    assert view["provider"] == "stripe"
    assert view["providerPaymentId"] == intent.id
    assert view["status"] == "succeeded"
    assert view["amountReceivedCents"] == 1500
    assert view["currency"] == "usd"
    assert view["paymentMethod"] == {"brand": "visa", "last4": "4242"}


async def test_webhook_after_direct_success_credits_nothing_more(
    env: Env, sdk: stripe.StripeClient
) -> None:
    alice = await env.user()
    await save_card(env, sdk, alice)
    base = f"/users/{alice.user_id}"
    payment = (await alice.post(f"{base}/credits/purchase", json={"amountCents": 1500})).json()
    row: models.Payment = await env.scalar(
        select(models.Payment).where(models.Payment.id == payment["data"]["id"])
    )
    intent = await sdk.v1.payment_intents.retrieve_async(str(row.provider_payment_id))
    await deliver(env, event("payment_intent.succeeded", intent.to_dict()))
    await assert_credited_once(env, alice, 1500)


async def test_decline_at_charge_time_is_a_failed_payment(
    env: Env, sdk: stripe.StripeClient
) -> None:
    alice = await env.user()
    await save_card(env, sdk, alice, number=DECLINED_AT_CHARGE)
    base = f"/users/{alice.user_id}"
    response = await alice.post(f"{base}/credits/purchase", json={"amountCents": 1500})
    payment = data_of(response, 201)
    assert payment["status"] == "failed"
    assert payment["failureReason"]
    assert await rest_balance(alice) == 0


async def test_checkout_is_pending_until_stripe_reports_success(
    env: Env, sdk: stripe.StripeClient
) -> None:
    alice = await env.user()
    base = f"/users/{alice.user_id}"
    response = await alice.post("/users/credits/checkout", json={"amountCents": 2000})
    checkout = data_of(response, 201)
    assert checkout["status"] == "pending"
    assert checkout["clientSecret"].startswith("pi_")
    assert checkout["checkoutUrl"] is None
    assert await rest_balance(alice) == 0
    # The customer completes the payment in the browser (Stripe.js).
    intent_id = checkout["clientSecret"].split("_secret_")[0]
    method = await sdk.v1.payment_methods.create_async(
        {"type": "card", "card": {"number": VISA, "exp_month": 1, "exp_year": 2035, "cvc": "123"}}
    )
    await sdk.v1.payment_intents.update_async(intent_id, {"payment_method": method.id})
    intent = await sdk.v1.payment_intents.confirm_async(intent_id)
    assert intent.status == "succeeded"
    body = event("payment_intent.succeeded", intent.to_dict())
    assert (await deliver(env, body)).status_code == 200
    assert (await deliver(env, body)).json()["duplicate"] is True
    status = (await alice.get(f"{base}/payments/{checkout['paymentId']}/status")).json()["data"]
    assert status["status"] == "succeeded"
    assert await rest_balance(alice) == 2000 * 10_000


async def test_auto_top_up_charges_once_below_threshold(env: Env, sdk: stripe.StripeClient) -> None:
    alice = await env.user()
    await save_card(env, sdk, alice)
    base = f"/users/{alice.user_id}"
    settings = {"enabled": True, "threshold": 5_000_000, "amountCents": 1000}
    assert (await alice.put(f"{base}/auto-top-up", json=settings)).status_code == 200
    account = await account_of(env, alice)
    provider = build_payment_provider(env.settings)
    try:
        async with env.sessions() as session:
            payment = await maybe_auto_top_up(
                session, account.id, provider=provider, settings=env.settings
            )
            assert payment is not None and payment.status == "succeeded"
            assert payment.kind == "auto_top_up"
            # Balance is now 10 USD, above the 5 USD threshold: nothing more.
            assert (
                await maybe_auto_top_up(
                    session, account.id, provider=provider, settings=env.settings
                )
                is None
            )
    finally:
        await provider.close()
    assert await rest_balance(alice) == 1000 * 10_000


async def test_hosted_checkout_completes_through_checkout_session_events(
    env: Env, sdk: stripe.StripeClient
) -> None:
    alice = await env.user()
    base = f"/users/{alice.user_id}"
    body = {
        "amountCents": 2500,
        "successUrl": "https://app.example.com/paid",
        "cancelUrl": "https://app.example.com/canceled",
    }
    response = await alice.post("/users/credits/checkout", json=body)
    checkout = data_of(response, 201)
    assert checkout["status"] == "pending"
    assert checkout["clientSecret"] is None
    assert "/c/pay/cs_test_" in checkout["checkoutUrl"]
    # Stripe's events once the customer paid on the hosted page (recorded shapes).
    paid_session = checkout_session(
        checkout,
        "complete",
        "paid",
        amount_total=2500,
        currency="usd",
        payment_intent="pi_hosted_1",
    )
    assert (
        await deliver(env, event("checkout.session.completed", paid_session))
    ).status_code == 200
    succeeded_intent = {
        "id": "pi_hosted_1",
        "object": "payment_intent",
        "amount": 2500,
        "amount_received": 2500,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {"payment_id": checkout["paymentId"]},
    }
    await deliver(env, event("payment_intent.succeeded", succeeded_intent))
    payment = (await alice.get(f"{base}/payments/{checkout['paymentId']}")).json()["data"]
    assert payment["status"] == "succeeded"
    await assert_credited_once(env, alice, 2500)


async def test_expired_checkout_session_cancels_the_payment(
    env: Env, sdk: stripe.StripeClient
) -> None:
    alice = await env.user()
    body = {"amountCents": 2500, "successUrl": "https://app.example.com/paid"}
    checkout = (await alice.post("/users/credits/checkout", json=body)).json()["data"]
    expired = checkout_session(checkout, "expired", "unpaid", payment_intent=None)
    await deliver(env, event("checkout.session.expired", expired))
    status = (
        await alice.get(f"/users/{alice.user_id}/payments/{checkout['paymentId']}/status")
    ).json()["data"]
    assert status["status"] == "canceled"


@pytest.mark.settings(
    payments_provider="stripe",
    stripe_api_key=API_KEY,
    stripe_webhook_secret=SECRET,
    stripe_api_base="http://127.0.0.1:9",
)
async def test_unreachable_stripe_is_502_and_moves_no_money(env: Env) -> None:
    alice = await env.user()
    response = await alice.post("/users/credits/checkout", json={"amountCents": 1000})
    assert response.status_code == 502
    assert response.json()["success"] is False
    assert await env.all(select(models.LedgerEntry)) == []


async def test_refunds_at_stripe_take_their_share_once(env: Env, sdk: stripe.StripeClient) -> None:
    alice = await env.user()
    await save_card(env, sdk, alice)
    purchase = f"/users/{alice.user_id}/credits/purchase"
    payment_id = data_of(await alice.post(purchase, json={"amountCents": 1500}), 201)["id"]
    provider = build_payment_provider(env.settings)
    try:
        async with env.sessions() as session:
            refunded = await refund_payment(session, provider, payment_id, amount_cents=500)
    finally:
        await provider.close()
    assert (refunded.status, refunded.refunded_cents) == ("succeeded", 500)
    intent = await sdk.v1.payment_intents.retrieve_async(str(refunded.provider_payment_id))
    latest = intent.latest_charge
    charge_id = latest if isinstance(latest, str) else str(latest.id)
    # Stripe's event for the operator's refund finds it applied.
    charge = (await sdk.v1.charges.retrieve_async(charge_id)).to_dict()
    assert (await deliver(env, event("charge.refunded", charge))).status_code == 200
    assert await rest_balance(alice) == 1000 * 10_000
    # The rest refunded at Stripe (its dashboard), reported by an event that lists no refunds.
    await sdk.v1.refunds.create_async({"payment_intent": intent.id})
    charge = (await sdk.v1.charges.retrieve_async(charge_id)).to_dict()
    charge.pop("refunds", None)
    assert (await deliver(env, event("charge.refunded", charge))).status_code == 200
    assert await rest_balance(alice) == 0
    shown = data_of(await alice.get(f"/users/{alice.user_id}/payments/{payment_id}"))
    assert shown["status"] == "refunded"
