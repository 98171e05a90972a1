"""Refunds: each takes its share of the payment's credits back once, by webhook or operator."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from gateway.billing.providers.sandbox import SandboxProvider
from gateway.billing.refunds import refund_payment
from gateway.db import models
from gateway.errors import Unprocessable, ValidationFailed
from tests.billing.helpers import (
    SECRET,
    balance_of_payment,
    deliver,
    event,
    intent,
    payment_row,
    pending_payment,
    rest_balance,
)
from tests.conftest import Client, Env
from tests.envelopes import data_of
from tests.usage.helpers import service

pytestmark = pytest.mark.settings(stripe_webhook_secret=SECRET)
CREDITS = 1000 * 10_000


def refund(refund_id: str, amount: int, *, intent_id: str | None = "pi_1") -> dict[str, Any]:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "charge": "ch_1",
        "currency": "usd",
        "payment_intent": intent_id,
        "status": "succeeded",
    }


def charge(amount: int, *refunds: dict[str, Any]) -> dict[str, Any]:
    """A refunded charge as Stripe's `charge.refunded` carries it, listing its refunds."""
    refunded = sum(r["amount"] for r in refunds)
    return {
        "id": "ch_1",
        "object": "charge",
        "amount": amount,
        "amount_refunded": refunded,
        "refunded": refunded >= amount,
        "payment_intent": "pi_1",
        "currency": "usd",
        "status": "succeeded",
        "refunds": {"object": "list", "data": list(refunds), "has_more": False},
    }


async def paid(env: Env, amount_cents: int = 1000) -> str:
    payment_id = await pending_payment(env, amount_cents=amount_cents)
    ok = intent("pi_1", payment_id, status="succeeded", amount=amount_cents)
    assert (await deliver(env, event("payment_intent.succeeded", ok))).status_code == 200
    return payment_id


async def refund_keys(env: Env) -> list[str]:
    entries = await env.all(select(models.LedgerEntry).order_by(models.LedgerEntry.id))
    return [e.idempotency_key for e in entries if e.reason == "refund"]


# --- webhooks --------------------------------------------------------------------------------


async def test_partial_refund_takes_its_share_of_the_credits(env: Env) -> None:
    payment_id = await paid(env)
    await deliver(env, event("charge.refunded", charge(1000, refund("re_1", 300))))
    row = await payment_row(env, payment_id)
    assert (row.status, row.refunded_cents, row.refunded_credits) == ("succeeded", 300, 3_000_000)
    assert await balance_of_payment(env, payment_id) == CREDITS - 3_000_000


async def test_full_refund_takes_every_credit_and_marks_the_payment_refunded(env: Env) -> None:
    payment_id = await paid(env)
    await deliver(env, event("charge.refunded", charge(1000, refund("re_1", 1000))))
    assert (await payment_row(env, payment_id)).status == "refunded"
    assert await balance_of_payment(env, payment_id) == 0
    assert await refund_keys(env) == ["refund:re_1"]


async def test_a_refund_reported_by_several_events_is_applied_once(env: Env) -> None:
    payment_id = await paid(env)
    first = refund("re_1", 400)
    await deliver(env, event("refund.created", first))
    await deliver(env, event("charge.refunded", charge(1000, first)))
    await deliver(env, event("refund.updated", first))
    assert await balance_of_payment(env, payment_id) == CREDITS - 4_000_000
    assert await refund_keys(env) == ["refund:re_1"]


async def test_later_refunds_of_a_charge_apply_only_what_is_new(env: Env) -> None:
    payment_id = await paid(env)
    first, second = refund("re_1", 250), refund("re_2", 750)
    await deliver(env, event("charge.refunded", charge(1000, first)))
    await deliver(env, event("charge.refunded", charge(1000, first, second)))
    assert (await payment_row(env, payment_id)).status == "refunded"
    assert await balance_of_payment(env, payment_id) == 0
    assert await refund_keys(env) == ["refund:re_1", "refund:re_2"]


async def test_partial_shares_round_down_and_the_last_refund_takes_the_rest(env: Env) -> None:
    # 3 cents that bought 10 credits: thirds of 3.33 credits each.
    payment_id = await pending_payment(env, amount_cents=3)
    async with env.sessions() as session:
        row = await session.get(models.Payment, payment_id)
        assert row is not None
        row.credits = 10
        await session.commit()
    await deliver(
        env,
        event("payment_intent.succeeded", intent("pi_1", payment_id, status="succeeded", amount=3)),
    )
    taken = []
    for number in (1, 2, 3):
        await deliver(env, event("refund.created", refund(f"re_{number}", 1)))
        taken.append((await payment_row(env, payment_id)).refunded_credits)
    assert taken == [3, 6, 10]
    assert await balance_of_payment(env, payment_id) == 0


async def test_refund_of_spent_credits_leaves_a_negative_balance(env: Env) -> None:
    payment_id = await paid(env)
    row = await payment_row(env, payment_id)
    async with env.sessions() as session:
        from gateway.billing.ledger import post_entry

        await post_entry(
            session,
            account_id=row.account_id,
            amount=-CREDITS,
            reason="usage",
            idempotency_key="spent",
        )
        await session.commit()
    await deliver(env, event("charge.refunded", charge(1000, refund("re_1", 500))))
    assert await balance_of_payment(env, payment_id) == -CREDITS // 2


async def test_refund_beyond_the_payment_takes_no_more_than_it_granted(env: Env) -> None:
    payment_id = await paid(env)
    await deliver(env, event("refund.created", refund("re_1", 800)))
    await deliver(env, event("refund.created", refund("re_2", 800)))
    row = await payment_row(env, payment_id)
    assert (row.status, row.refunded_cents, row.refunded_credits) == ("refunded", 1000, CREDITS)
    assert await balance_of_payment(env, payment_id) == 0


async def test_pending_refund_moves_nothing(env: Env) -> None:
    payment_id = await paid(env)
    waiting = {**refund("re_1", 500), "status": "pending"}
    assert (await deliver(env, event("refund.created", waiting))).status_code == 200
    assert await balance_of_payment(env, payment_id) == CREDITS


async def test_refund_of_an_unknown_payment_is_acknowledged_and_ignored(env: Env) -> None:
    await paid(env)
    response = await deliver(env, event("refund.created", refund("re_1", 500, intent_id="pi_x")))
    assert response.status_code == 200
    assert await refund_keys(env) == []


@pytest.mark.parametrize(
    "fields",
    [{"amount": -5}, {"amount": 0}, {"id": "re_" + "x" * 300}, {"amount": "many"}],
    ids=["negative-amount", "zero-amount", "huge-id", "text-amount"],
)
async def test_malformed_refund_is_400_and_writes_nothing(env: Env, fields: dict[str, Any]) -> None:
    payment_id = await paid(env)
    response = await deliver(env, event("refund.created", {**refund("re_1", 500), **fields}))
    assert response.status_code == 400
    assert await balance_of_payment(env, payment_id) == CREDITS
    assert (await payment_row(env, payment_id)).refunded_cents == 0


# --- the operator's refund on the sandbox ---------------------------------------------------


async def sandbox_purchase(env: Env) -> tuple[Client, str]:
    alice = await env.user()
    response = await alice.post("/users/credits/checkout", json={"amountCents": 1000})
    payment = data_of(response, 201)
    assert payment["status"] == "succeeded"
    return alice, payment["paymentId"]


async def operator_refund(
    env: Env, payment_id: str, amount_cents: int | None = None
) -> models.Payment:
    async with env.sessions() as session:
        return await refund_payment(
            session, SandboxProvider(), payment_id, amount_cents=amount_cents
        )


async def test_operator_refunds_part_then_the_rest_on_the_sandbox(env: Env) -> None:
    alice, payment_id = await sandbox_purchase(env)
    partial = await operator_refund(env, payment_id, 400)
    assert (partial.status, partial.refunded_cents) == ("succeeded", 400)
    assert await rest_balance(alice) == CREDITS - 4_000_000
    rest = await operator_refund(env, payment_id)
    assert (rest.status, rest.refunded_cents, rest.refunded_credits) == ("refunded", 1000, CREDITS)
    assert await rest_balance(alice) == 0
    shown = data_of(await alice.get(f"/users/{alice.user_id}/payments/{payment_id}"))
    assert shown["status"] == "refunded"


@pytest.mark.parametrize("amount", [0, -1, 1001, 2**63], ids=["zero", "negative", "more", "2^63"])
async def test_operator_refund_outside_what_is_left_is_refused(env: Env, amount: int) -> None:
    alice, payment_id = await sandbox_purchase(env)
    with pytest.raises(ValidationFailed, match="amountCents must be 1 to 1000"):
        await operator_refund(env, payment_id, amount)
    assert await rest_balance(alice) == CREDITS


async def test_operator_refund_of_a_refunded_payment_is_refused(env: Env) -> None:
    _, payment_id = await sandbox_purchase(env)
    await operator_refund(env, payment_id)
    with pytest.raises(Unprocessable, match="this one is refunded"):
        await operator_refund(env, payment_id)


REFUND = """mutation ($input: RefundPaymentInput!) {
  refundPayment(input: $input) {
    payment { id status }
    errors { code field }
  }
}"""


async def test_the_service_token_refunds_through_graphql_as_the_operator_does(env: Env) -> None:
    alice, payment_id = await sandbox_purchase(env)
    variables = {"input": {"paymentId": payment_id, "amountCents": 250}}
    payload = (await service(env).gql_data(REFUND, variables))["refundPayment"]
    assert payload == {"payment": {"id": payment_id, "status": "SUCCEEDED"}, "errors": []}
    assert await rest_balance(alice) == CREDITS - 2_500_000
    payload = await service(env).gql_data(REFUND, {"input": {"paymentId": payment_id}})
    assert payload["refundPayment"]["payment"]["status"] == "REFUNDED"
    assert await rest_balance(alice) == 0


async def test_a_graphql_refund_beyond_what_is_left_is_a_typed_error(env: Env) -> None:
    alice, payment_id = await sandbox_purchase(env)
    variables = {"input": {"paymentId": payment_id, "amountCents": 1001}}
    payload = (await service(env).gql_data(REFUND, variables))["refundPayment"]
    assert payload == {
        "payment": None,
        "errors": [{"code": "VALIDATION_FAILED", "field": "amountCents"}],
    }
    assert await rest_balance(alice) == CREDITS


async def test_a_user_cannot_refund_their_own_payment(env: Env) -> None:
    """Operators' mutations need the service token, as createPromotion does."""
    alice, payment_id = await sandbox_purchase(env)
    body = await alice.gql(REFUND, {"input": {"paymentId": payment_id}})
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
    assert await rest_balance(alice) == CREDITS
