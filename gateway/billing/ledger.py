"""The append-only ledger: every balance change is an entry written with the balance it changes.

Invariant: an account's `balance` equals the sum of its entries' `amount`, always. Callers run
`post_entry` inside their own transaction and commit; the idempotency key makes a retried
write a no-op that returns the first entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import Account, LedgerEntry, utcnow
from gateway.errors import NotFound


@dataclass(frozen=True)
class Posted:
    entry: LedgerEntry
    # False when the idempotency key had already been used: nothing moved this time.
    applied: bool


async def find_entry(session: AsyncSession, idempotency_key: str) -> LedgerEntry | None:
    return (
        await session.execute(
            select(LedgerEntry).where(LedgerEntry.idempotency_key == idempotency_key)
        )
    ).scalar_one_or_none()


async def post_entry(
    session: AsyncSession,
    *,
    account_id: str,
    amount: int,
    reason: str,
    idempotency_key: str,
    reference_id: str | None = None,
) -> Posted:
    """Move `amount` micro-credits (negative for a debit) on an account, exactly once per key.

    Runs in the caller's transaction (a savepoint guards the insert): the caller commits.
    The balance update is a single atomic `UPDATE … RETURNING`, so concurrent writers never
    lose an update, and the row lock it takes serialises them per account on PostgreSQL.
    """
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError("ledger amounts are integers (micro-credits)")
    existing = await find_entry(session, idempotency_key)
    if existing is not None:
        return Posted(existing, applied=False)
    try:
        async with session.begin_nested():
            balance_after = (
                await session.execute(
                    update(Account)
                    .where(Account.id == account_id)
                    .values(balance=Account.balance + amount, updated_at=utcnow())
                    .returning(Account.balance)
                )
            ).scalar_one_or_none()
            if balance_after is None:
                raise NotFound("Account not found")
            entry = LedgerEntry(
                account_id=account_id,
                amount=amount,
                balance_after=int(balance_after),
                reason=reason,
                reference_id=reference_id,
                idempotency_key=idempotency_key,
            )
            session.add(entry)
            await session.flush()
    except IntegrityError:
        # A concurrent writer used the same key first; its entry stands, ours rolled back.
        existing = await find_entry(session, idempotency_key)
        if existing is None:
            raise
        return Posted(existing, applied=False)
    return Posted(entry, applied=True)


async def balance_of(session: AsyncSession, account_id: str) -> int:
    """The stored balance: one indexed row, never a sum over history."""
    value = await session.scalar(select(Account.balance).where(Account.id == account_id))
    if value is None:
        raise NotFound("Account not found")
    return int(value)


async def sum_of_entries(session: AsyncSession, account_id: str) -> int:
    """The audit side of the invariant (tests and reconciliation)."""
    total = await session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.account_id == account_id
        )
    )
    return int(total or 0)
