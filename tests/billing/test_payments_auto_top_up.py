"""Auto top-up: after a debit below the threshold, one charge of the saved card (sandbox)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from gateway.billing.ledger import post_entry, sum_of_entries
from gateway.billing.payments import maybe_auto_top_up
from gateway.billing.providers import PaymentEvent
from gateway.billing.providers.sandbox import SandboxProvider
from gateway.db import models
from tests.billing.helpers import rest_balance
from tests.conftest import Client, Env


async def funded_account(
    env: Env, *, threshold: int = 5_000_000, amount_cents: int = 1000, enabled: bool = True
) -> tuple[Client, str]:
    """A user with a saved card, auto top-up configured, and 1 USD of credit."""
    alice = await env.user()
    base = f"/users/{alice.user_id}"
    await alice.post(f"{base}/payment-method/setup-session", json={})
    body = {"enabled": enabled, "threshold": threshold, "amountCents": amount_cents}
    assert (await alice.put(f"{base}/auto-top-up", json=body)).status_code == 200
    await alice.post("/users/credits/checkout", json={"amountCents": 500})  # 5 USD
    account_id: str = await env.scalar(
        select(models.Account.id).where(models.Account.user_id == alice.user_id)
    )
    return alice, account_id


async def debit(env: Env, account_id: str, amount: int, key: str) -> None:
    async with env.sessions() as session:
        await post_entry(
            session, account_id=account_id, amount=-amount, reason="usage", idempotency_key=key
        )
        await session.commit()


async def top_up(
    env: Env, account_id: str, provider: object | None = None
) -> models.Payment | None:
    async with env.sessions() as session:
        return await maybe_auto_top_up(
            session,
            account_id,
            provider=provider or env.state.services.payments,  # type: ignore[arg-type]
            settings=env.settings,
        )


async def auto_payments(env: Env, account_id: str) -> list[models.Payment]:
    return await env.all(
        select(models.Payment).where(
            models.Payment.account_id == account_id, models.Payment.kind == "auto_top_up"
        )
    )


async def test_debit_below_threshold_starts_one_top_up(env: Env) -> None:
    alice, account_id = await funded_account(env)
    await debit(env, account_id, 4_000_000, "u1")  # 1 USD left, threshold 5 USD
    payment = await top_up(env, account_id)
    assert payment is not None
    assert payment.kind == "auto_top_up" and payment.status == "succeeded"
    assert payment.creator_user_id is None
    balance = await rest_balance(alice)
    assert balance == 1_000_000 + 1000 * 10_000
    async with env.sessions() as session:
        assert await sum_of_entries(session, account_id) == balance


async def test_balance_above_threshold_starts_nothing(env: Env) -> None:
    _, account_id = await funded_account(env, threshold=1_000_000)
    await debit(env, account_id, 1_000_000, "u1")  # 4 USD left
    assert await top_up(env, account_id) is None
    assert await auto_payments(env, account_id) == []


async def test_disabled_auto_top_up_starts_nothing(env: Env) -> None:
    _, account_id = await funded_account(env, enabled=False)
    await debit(env, account_id, 4_900_000, "u1")
    assert await top_up(env, account_id) is None


async def test_pending_top_up_blocks_another(env: Env) -> None:
    _, account_id = await funded_account(env)
    await debit(env, account_id, 4_900_000, "u1")
    async with env.sessions() as session:
        session.add(
            models.Payment(
                account_id=account_id,
                kind="auto_top_up",
                amount_cents=1000,
                credits=1000 * 10_000,
                provider="sandbox",
            )
        )
        await session.commit()
    assert await top_up(env, account_id) is None
    assert len(await auto_payments(env, account_id)) == 1


async def test_declined_top_up_is_recorded_and_switches_auto_top_up_off(env: Env) -> None:
    alice, account_id = await funded_account(env, amount_cents=1002)
    await debit(env, account_id, 4_900_000, "u1")
    payment = await top_up(env, account_id)
    assert payment is not None and payment.status == "failed"
    assert payment.failure_reason == "Your card was declined."
    settings = (await alice.get(f"/users/{alice.user_id}/auto-top-up")).json()["data"]
    assert settings["enabled"] is False
    assert await top_up(env, account_id) is None


class SlowSandbox(SandboxProvider):
    """Takes its time to charge, so concurrent triggers overlap."""

    async def charge_off_session(self, **kw: object) -> PaymentEvent:
        await asyncio.sleep(0.2)
        return await super().charge_off_session(**kw)  # type: ignore[arg-type]


async def test_concurrent_triggers_start_one_top_up(env: Env) -> None:
    if env.backend != "postgresql":
        return  # SQLite serialises writers anyway; the row lock is PostgreSQL's part
    _, account_id = await funded_account(env)
    await debit(env, account_id, 4_900_000, "u1")
    provider = SlowSandbox()
    results = await asyncio.gather(*(top_up(env, account_id, provider) for _ in range(5)))
    started = [r for r in results if r is not None]
    assert len(started) == 1
    assert len(await auto_payments(env, account_id)) == 1


async def test_request_context_form_uses_its_session_provider_and_settings(env: Env) -> None:
    _, account_id = await funded_account(env)
    await debit(env, account_id, 4_900_000, "u1")
    ctx = env.state.new_context()
    try:
        payment = await maybe_auto_top_up(ctx, account_id)
    finally:
        await ctx.close()
    assert payment is not None and payment.status == "succeeded"
    assert payment.provider == "sandbox"
