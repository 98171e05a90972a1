"""Helpers of the billing tests (no tests here): the plan catalog seeded, organizations
subscribed and their plan history, Stripe webhook events signed and delivered, pending payments
and their balances.

Payloads follow Stripe's recorded event shapes, signed with the endpoint secret (Stripe's scheme:
`t=<ts>,v1=hex(hmac_sha256(secret, f"{t}.{payload}"))`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import stripe
from sqlalchemy import select

from gateway.billing.stripe_subscriptions import StripeSubscriptions
from gateway.db import models
from resolvers.plan_catalog import DEFAULT_PLANS, seed_plans
from tests.conftest import Client, Env
from tests.envelopes import data_of

SECRET = "whsec_test_secret"
STRIPE_KEY = "sk_test_gateway_subscriptions"
PLAN_KEYS = {"id", "name", "displayName", "type", "interval", "pricePerSeatCents", "features"}


async def rest_balance(client: Client) -> int:
    """The caller's personal balance, as `GET /users/{id}/balance` answers it."""
    balance: int = data_of(await client.get(f"/users/{client.user_id}/balance"))["balance"]
    return balance


async def seed(env: Env, specs: Any = DEFAULT_PLANS) -> dict[str, str]:
    """The default catalog (or `specs`) in the test database: plan name → id."""
    async with env.sessions() as session:
        done = await seed_plans(session, specs)
        await session.commit()
        return {plan.name: plan.id for plan, _ in done}


def plan_row(
    name: str, display_name: str, type_: str, price_per_seat_cents: int, **columns: Any
) -> models.Plan:
    """A monthly plan of a test's own (not added to a session yet)."""
    return models.Plan(
        name=name,
        display_name=display_name,
        type=type_,
        interval="Monthly",
        price_per_seat_cents=price_per_seat_cents,
        **columns,
    )


def sign(payload: str, secret: str = SECRET, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2025-01-27.acacia",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj},
    }


def intent(
    intent_id: str,
    payment_id: str | None,
    *,
    status: str,
    amount: int,
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": "usd",
        "customer": "cus_test",
        "status": status,
        "metadata": {"payment_id": payment_id} if payment_id else {},
        "last_payment_error": {"code": "card_declined", "message": error} if error else None,
        "livemode": False,
    }


async def deliver(
    env: Env, body: dict[str, Any], *, signature: str | None = None
) -> httpx.Response:
    payload = json.dumps(body)
    headers = {"Content-Type": "application/json"}
    headers["Stripe-Signature"] = signature if signature is not None else sign(payload)
    return await env.http.post("/webhooks/stripe", content=payload, headers=headers)


async def pending_payment(env: Env, *, amount_cents: int = 1000, intent_id: str = "pi_1") -> str:
    alice = await env.user()
    async with env.sessions() as session:
        payment = models.Payment(
            account_id=await env.account_id(user_id=alice.user_id),
            kind="checkout",
            amount_cents=amount_cents,
            credits=amount_cents * 10_000,
            provider="stripe",
            provider_payment_id=intent_id,
            creator_user_id=alice.user_id,
        )
        session.add(payment)
        await session.commit()
        return payment.id


async def payment_row(env: Env, payment_id: str) -> models.Payment:
    found: models.Payment = await env.scalar(
        select(models.Payment).where(models.Payment.id == payment_id)
    )
    return found


async def balance_of_payment(env: Env, payment_id: str) -> int:
    payment = await payment_row(env, payment_id)
    value: int = await env.scalar(
        select(models.Account.balance).where(models.Account.id == payment.account_id)
    )
    return value


async def team(env: Env, members: int = 0) -> tuple[Client, str, dict[str, str]]:
    """An owner, their organization with `members` extra members, and the seeded catalog."""
    plans = await seed(env)
    owner = await env.user()
    org_id = await env.organization(owner)
    for _ in range(members):
        await env.add_member(org_id, await env.user())
    return owner, org_id, plans


async def subscribed(env: Env, members: int = 0, seats: int = 3) -> tuple[Client, str, dict]:
    owner, org_id, plans = await team(env, members)
    response = await subscribe(owner, org_id, plans["teams-monthly"], seats)
    assert response.status_code == 201, response.text
    return owner, org_id, plans


async def subscribe(
    client: Client, org_id: str, plan_id: str, seats: object, **kw: Any
) -> httpx.Response:
    """`POST /organizations/{org_id}/plan` with this plan and seat count."""
    return await client.post(
        f"/organizations/{org_id}/plan", json={"planId": plan_id, "seats": seats}, **kw
    )


async def history(env: Env, org_id: str) -> list[tuple[str, int]]:
    """(action, seats) of the organization's plan history, oldest first."""
    account_id = await env.scalar(
        select(models.Account.id).where(models.Account.organization_id == org_id)
    )
    rows = await env.all(
        select(models.PlanHistory)
        .where(models.PlanHistory.account_id == account_id)
        .order_by(models.PlanHistory.created_at, models.PlanHistory.id)
    )
    return [(row.action, row.seats) for row in rows]


def stripe_client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        STRIPE_KEY, base_addresses={"api": url}, http_client=stripe.HTTPXClient()
    )


async def stripe_team(
    env: Env, url: str, *, card: bool = True, plan_names: tuple[str, ...] = ("teams-monthly",)
) -> tuple[Client, str, str, str]:
    """An organization with a Stripe customer (with a default card unless `card` is False)
    and the plans named on Stripe (the catalog as `team` seeds it): (owner, org id, the first
    plan's id, customer id)."""
    owner, org_id, plans = await team(env)
    client = stripe_client(url)
    provider = StripeSubscriptions(STRIPE_KEY, url)
    customer = await client.v1.customers.create_async(params={"metadata": {"org": org_id}})
    if card:
        method = await client.v1.payment_methods.create_async(
            params={
                "type": "card",
                "card": {
                    "number": "4242424242424242",
                    "exp_month": 12,
                    "exp_year": 2034,
                    "cvc": "123",
                },
            }
        )
        await client.v1.payment_methods.attach_async(method.id, params={"customer": customer.id})
        await client.v1.customers.update_async(
            customer.id, params={"invoice_settings": {"default_payment_method": method.id}}
        )
    async with env.sessions() as session:
        for name in plan_names:
            plan = await session.get_one(models.Plan, plans[name])
            plan.provider_price_id = await provider.ensure_plan(plan)
        account = await session.get_one(models.Account, await env.account_id(org_id=org_id))
        account.provider_customer_id = customer.id
        await session.commit()
    await provider.close()
    return owner, org_id, plans[plan_names[0]], customer.id
