"""Stripe webhooks: signature verified, events stored by id, payments credited exactly once
(events built and signed by `tests/billing/helpers.py`)."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from gateway.db import models
from tests.billing.helpers import (
    SECRET,
    balance_of_payment,
    deliver,
    event,
    intent,
    payment_row,
    pending_payment,
    plan_row,
    sign,
)
from tests.conftest import Env

pytestmark = pytest.mark.settings(stripe_webhook_secret=SECRET)


async def test_bad_signature_is_400(env: Env) -> None:
    body = event("payment_intent.succeeded", intent("pi_1", None, status="succeeded", amount=1))
    response = await deliver(env, body, signature=sign(json.dumps(body), secret="whsec_wrong"))
    assert response.status_code == 400
    assert await env.all(select(models.WebhookEvent)) == []


async def test_missing_signature_is_400(env: Env) -> None:
    response = await env.http.post("/webhooks/stripe", content=b"{}")
    assert response.status_code == 400


async def test_stale_signature_is_400(env: Env) -> None:
    body = event("payment_intent.succeeded", intent("pi_1", None, status="succeeded", amount=1))
    old = int(time.time()) - 3600
    response = await deliver(env, body, signature=sign(json.dumps(body), timestamp=old))
    assert response.status_code == 400


@pytest.mark.settings(stripe_webhook_secret=None)
async def test_unconfigured_webhooks_are_503(env: Env) -> None:
    body = event("payment_intent.succeeded", intent("pi_1", None, status="succeeded", amount=1))
    assert (await deliver(env, body)).status_code == 503


async def test_succeeded_event_credits_the_payment_once(env: Env) -> None:
    payment_id = await pending_payment(env)
    body = event(
        "payment_intent.succeeded", intent("pi_1", payment_id, status="succeeded", amount=1000)
    )
    response = await deliver(env, body)
    assert response.status_code == 200
    assert response.json() == {"received": True}
    payment = await payment_row(env, payment_id)
    assert payment.status == "succeeded" and payment.paid_at is not None
    assert await balance_of_payment(env, payment_id) == 1000 * 10_000
    [entry] = await env.all(select(models.LedgerEntry))
    assert entry.idempotency_key == f"payment:{payment_id}"
    [stored] = await env.all(select(models.WebhookEvent))
    assert stored.id == body["id"] and stored.type == "payment_intent.succeeded"


async def test_replayed_event_changes_nothing(env: Env) -> None:
    payment_id = await pending_payment(env)
    body = event(
        "payment_intent.succeeded", intent("pi_1", payment_id, status="succeeded", amount=1000)
    )
    await deliver(env, body)
    again = await deliver(env, body)
    assert again.status_code == 200
    assert again.json() == {"received": True, "duplicate": True}
    assert await balance_of_payment(env, payment_id) == 1000 * 10_000
    assert len(await env.all(select(models.LedgerEntry))) == 1


async def test_second_success_event_for_same_intent_credits_nothing(env: Env) -> None:
    payment_id = await pending_payment(env)
    obj = intent("pi_1", payment_id, status="succeeded", amount=1000)
    await deliver(env, event("payment_intent.succeeded", obj))
    await deliver(env, event("payment_intent.succeeded", obj))
    assert await balance_of_payment(env, payment_id) == 1000 * 10_000
    assert len(await env.all(select(models.WebhookEvent))) == 2


async def test_event_found_by_intent_id_without_metadata(env: Env) -> None:
    payment_id = await pending_payment(env, intent_id="pi_nometa")
    body = event(
        "payment_intent.succeeded", intent("pi_nometa", None, status="succeeded", amount=1000)
    )
    await deliver(env, body)
    assert (await payment_row(env, payment_id)).status == "succeeded"


async def test_failed_event_marks_payment_failed_with_reason(env: Env) -> None:
    payment_id = await pending_payment(env)
    obj = intent(
        "pi_1",
        payment_id,
        status="requires_payment_method",
        amount=1000,
        error="Your card has insufficient funds.",
    )
    response = await deliver(env, event("payment_intent.payment_failed", obj))
    assert response.status_code == 200
    payment = await payment_row(env, payment_id)
    assert payment.status == "failed"
    assert payment.failure_reason == "Your card has insufficient funds."
    assert await balance_of_payment(env, payment_id) == 0


async def test_failure_after_success_changes_nothing(env: Env) -> None:
    payment_id = await pending_payment(env)
    await deliver(
        env,
        event(
            "payment_intent.succeeded", intent("pi_1", payment_id, status="succeeded", amount=1000)
        ),
    )
    late = intent(
        "pi_1", payment_id, status="requires_payment_method", amount=1000, error="declined"
    )
    await deliver(env, event("payment_intent.payment_failed", late))
    payment = await payment_row(env, payment_id)
    assert payment.status == "succeeded" and payment.failure_reason is None
    assert await balance_of_payment(env, payment_id) == 1000 * 10_000


async def test_success_after_failure_credits_once(env: Env) -> None:
    payment_id = await pending_payment(env)
    failed = intent(
        "pi_1", payment_id, status="requires_payment_method", amount=1000, error="declined"
    )
    await deliver(env, event("payment_intent.payment_failed", failed))
    ok = intent("pi_1", payment_id, status="succeeded", amount=1000)
    await deliver(env, event("payment_intent.succeeded", ok))
    payment = await payment_row(env, payment_id)
    assert payment.status == "succeeded" and payment.failure_reason is None
    assert await balance_of_payment(env, payment_id) == 1000 * 10_000


async def test_unknown_event_type_is_acknowledged_and_stored(env: Env) -> None:
    body = event("customer.created", {"id": "cus_1", "object": "customer"})
    response = await deliver(env, body)
    assert response.status_code == 200
    [stored] = await env.all(select(models.WebhookEvent))
    assert stored.type == "customer.created"


async def test_event_for_unknown_payment_is_acknowledged(env: Env) -> None:
    body = event(
        "payment_intent.succeeded", intent("pi_other", None, status="succeeded", amount=500)
    )
    response = await deliver(env, body)
    assert response.status_code == 200
    assert await env.all(select(models.LedgerEntry)) == []


async def test_metadata_of_another_intent_does_not_credit(env: Env) -> None:
    payment_id = await pending_payment(env, intent_id="pi_real")
    forged = intent("pi_forged", payment_id, status="succeeded", amount=1000)
    await deliver(env, event("payment_intent.succeeded", forged))
    assert (await payment_row(env, payment_id)).status == "pending"
    assert await balance_of_payment(env, payment_id) == 0


async def test_setup_intent_succeeded_sets_default_payment_method(env: Env) -> None:
    alice = await env.user()
    async with env.sessions() as session:
        account = await session.get_one(models.Account, await env.account_id(user_id=alice.user_id))
        account.provider_customer_id = "cus_alice"
        await session.commit()
    obj = {
        "id": "seti_1",
        "object": "setup_intent",
        "customer": "cus_alice",
        "payment_method": "pm_card_visa",
        "status": "succeeded",
        "usage": "off_session",
    }
    response = await deliver(env, event("setup_intent.succeeded", obj))
    assert response.status_code == 200
    method = await env.scalar(
        select(models.Account.default_payment_method_id).where(
            models.Account.user_id == alice.user_id
        )
    )
    assert method == "pm_card_visa"


async def test_subscription_event_updates_the_subscription(env: Env) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    async with env.sessions() as session:
        account = await session.get_one(models.Account, await env.account_id(org_id=org_id))
        plan = plan_row("team-monthly", "Team", "teams", 1000, provider_price_id="plan_team")
        session.add(plan)
        await session.flush()
        row = models.Subscription(
            account_id=account.id,
            plan_id=plan.id,
            seats=2,
            status="active",
            provider_subscription_id="sub_stripe_1",
        )
        session.add(row)
        await session.commit()
        subscription_id = row.id
    now = int(time.time())
    obj = {
        "id": "sub_stripe_1",
        "object": "subscription",
        "status": "past_due",
        "current_period_start": now,
        "current_period_end": now + 30 * 86400,
        "items": {"data": [{"plan": {"id": "plan_team"}, "quantity": 2}]},
    }
    body = event("customer.subscription.updated", obj)
    assert (await deliver(env, body)).status_code == 200
    assert (await deliver(env, body)).json()["duplicate"] is True
    found: models.Subscription = await env.scalar(
        select(models.Subscription).where(models.Subscription.id == subscription_id)
    )
    assert found.status == "past_due"
