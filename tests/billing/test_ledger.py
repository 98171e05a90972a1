"""The ledger: integer entries, idempotent by key, balance equals the sum of entries."""

from __future__ import annotations

from functools import partial

import pytest
from sqlalchemy import select

from gateway.billing.ledger import Debit, balance_of, post_debits, post_entry, sum_of_entries
from gateway.db import models
from gateway.errors import NotFound
from tests.conftest import Env


async def _account(env: Env) -> str:
    return await env.account_id(user_id=(await env.user()).user_id)


async def test_entry_changes_balance_and_records_balance_after(env: Env) -> None:
    account_id = await _account(env)
    async with env.sessions() as session:
        post = partial(post_entry, session, account_id=account_id)
        first = await post(amount=5_000_000, reason="payment", idempotency_key="k1")
        second = await post(amount=-1_250_000, reason="usage", idempotency_key="k2")
        await session.commit()
        assert first.entry.balance_after == 5_000_000
        assert second.entry.balance_after == 3_750_000
        assert await balance_of(session, account_id) == 3_750_000
        assert await sum_of_entries(session, account_id) == 3_750_000


async def test_replayed_key_moves_nothing_and_returns_first_entry(env: Env) -> None:
    account_id = await _account(env)
    async with env.sessions() as session:
        post = partial(post_entry, session, account_id=account_id)
        first = await post(amount=100, reason="payment", idempotency_key="same")
        again = await post(amount=100, reason="payment", idempotency_key="same")
        await session.commit()
        assert first.applied and not again.applied
        assert again.entry.id == first.entry.id
        assert await balance_of(session, account_id) == 100


async def test_unknown_account_is_not_found_and_writes_nothing(env: Env) -> None:
    async with env.sessions() as session:
        with pytest.raises(NotFound):
            await post_entry(
                session,
                account_id="acc-01JAAAAAAAAAAAAAAAAAAAAAAA",
                amount=1,
                reason="x",
                idempotency_key="k",
            )
        await session.commit()
    assert await env.all(select(models.LedgerEntry)) == []


async def test_amounts_must_be_integers(env: Env) -> None:
    account_id = await _account(env)
    async with env.sessions() as session:
        with pytest.raises(TypeError):
            await post_entry(
                session, account_id=account_id, amount=1.5, reason="x", idempotency_key="k"
            )  # type: ignore[arg-type]


async def test_batch_debits_keep_running_balances_per_account(env: Env) -> None:
    a, b = await _account(env), await _account(env)
    async with env.sessions() as session:
        await post_entry(
            session, account_id=a, amount=1_000, reason="payment", idempotency_key="fa"
        )
        posted = await post_debits(
            session,
            [
                Debit(a, 300, "d1"),
                Debit(b, 50, "d2"),
                Debit(a, 900, "d3", reference_id="usg-x"),
            ],
            reason="usage",
        )
        await session.commit()
        assert posted.balances_after == [700, -50, -200]
        for account_id in (a, b):
            assert await balance_of(session, account_id) == await sum_of_entries(
                session, account_id
            )
        assert await balance_of(session, a) == -200


async def test_batch_debits_report_accounts_below_their_top_up_threshold(env: Env) -> None:
    a, b = await _account(env), await _account(env)
    async with env.sessions() as session:
        for account_id in (a, b):
            account = await session.get(models.Account, account_id)
            assert account is not None
            account.auto_top_up_enabled = account_id == a
            account.auto_top_up_threshold = 500
        await session.commit()
        posted = await post_debits(
            session, [Debit(a, 600, "x1"), Debit(b, 600, "x2")], reason="usage"
        )
        await session.commit()
    assert posted.below_threshold == [a]


async def test_batch_debit_of_an_unknown_account_writes_nothing(env: Env) -> None:
    a = await _account(env)
    async with env.sessions() as session:
        with pytest.raises(NotFound):
            await post_debits(
                session,
                [Debit(a, 1, "y1"), Debit("acc-01JAAAAAAAAAAAAAAAAAAAAAAA", 1, "y2")],
                reason="usage",
            )
        await session.rollback()
        assert await balance_of(session, a) == 0
    assert await env.all(select(models.LedgerEntry)) == []
