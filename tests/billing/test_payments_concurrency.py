"""On PostgreSQL: concurrent purchases, debits and webhook replays on one account keep
balance == sum(entries) and credit every payment exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from gateway.billing.ledger import post_entry, sum_of_entries
from gateway.db import models
from tests.billing.helpers import SECRET, deliver, event, intent
from tests.conftest import Env

pytestmark = pytest.mark.settings(stripe_webhook_secret=SECRET, database_pool_size=20)


async def test_concurrent_purchases_debits_and_replays_keep_the_ledger_exact(env: Env) -> None:
    if env.backend != "postgresql":
        pytest.skip("concurrency is tested on PostgreSQL")
    alice = await env.user()
    base = f"/users/{alice.user_id}"
    await alice.post(f"{base}/payment-method/setup-session", json={})
    account_id: str = await env.scalar(
        select(models.Account.id).where(models.Account.user_id == alice.user_id)
    )
    # Payments waiting for Stripe's webhook.
    pending: list[str] = []
    async with env.sessions() as session:
        for i in range(8):
            payment = models.Payment(
                account_id=account_id,
                kind="checkout",
                amount_cents=1000 + i,
                credits=(1000 + i) * 10_000,
                provider="stripe",
                provider_payment_id=f"pi_conc_{i}",
            )
            session.add(payment)
            pending.append(payment.id)
        await session.commit()

    async def purchase(amount: int) -> Any:
        response = await alice.post(f"{base}/credits/purchase", json={"amountCents": amount})
        assert response.status_code == 201, response.text
        return response.json()["data"]

    async def debit(i: int) -> None:
        async with env.sessions() as session:
            await post_entry(
                session,
                account_id=account_id,
                amount=-123_456,
                reason="usage",
                idempotency_key=f"usage:{i}",
            )
            await session.commit()

    deliveries = []
    for i, payment_id in enumerate(pending):
        obj = intent(f"pi_conc_{i}", payment_id, status="succeeded", amount=1000 + i)
        same = event("payment_intent.succeeded", obj, event_id=f"evt_conc_{i}")
        deliveries += [same, same, same, event("payment_intent.succeeded", obj)]
    amounts = [1000 + 100 * i for i in range(10)] + [1002, 2002]  # two declines

    async def webhook(body: dict[str, Any]) -> int:
        return (await deliver(env, body)).status_code

    results = await asyncio.gather(
        *(purchase(a) for a in amounts),
        *(debit(i) for i in range(15)),
        *(debit(i) for i in range(5)),  # replayed debits: same keys
        *(webhook(d) for d in deliveries),
    )
    purchases = results[: len(amounts)]
    statuses = results[len(amounts) + 20 :]
    assert all(s == 200 for s in statuses)
    assert sorted(p["status"] for p in purchases).count("failed") == 2

    async with env.sessions() as session:
        balance = await session.scalar(
            select(models.Account.balance).where(models.Account.id == account_id)
        )
        assert balance == await sum_of_entries(session, account_id)
        payments = list(
            (
                await session.execute(
                    select(models.Payment).where(models.Payment.account_id == account_id)
                )
            ).scalars()
        )
        entries = list(
            (
                await session.execute(
                    select(models.LedgerEntry).where(models.LedgerEntry.account_id == account_id)
                )
            ).scalars()
        )
    succeeded = [p for p in payments if p.status == "succeeded"]
    assert len(succeeded) == 10 + 8
    credited = Counter(e.reference_id for e in entries if e.amount > 0)
    assert all(credited[p.id] == 1 for p in succeeded)
    assert sum(credited.values()) == len(succeeded)
    expected = sum(p.credits for p in succeeded) - 15 * 123_456
    assert balance == expected
