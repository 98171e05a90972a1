"""The append-only ledger: every balance change is an entry written with the balance it changes.

Invariant: an account's `balance` equals the sum of its entries' `amount`, always. Callers run
`post_entry` inside their own transaction and commit; the idempotency key makes a retried
write a no-op that returns the first entry.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import (
    BigInteger,
    String,
    and_,
    any_,
    case,
    column,
    event,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlmodel import SQLModel, col

from gateway.db.bulk import insert_rows
from gateway.db.models import Account, LedgerEntry, utcnow
from gateway.db.session import dialect_name
from gateway.errors import NotFound
from gateway.ids import new_id
from gateway.metrics import LEDGER_POSTINGS

# Entries a session has posted, by reason, counted for /metrics once it commits.
_UNCOMMITTED = "gateway.ledger.uncommitted_postings"


def _posted(session: AsyncSession, reason: str, count: int = 1) -> None:
    session.info.setdefault(_UNCOMMITTED, Counter())[reason] += count


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released (`post_entry`'s): not yet
        return
    posted: Counter[str] | None = session.info.pop(_UNCOMMITTED, None)
    for reason, count in (posted or {}).items():
        LEDGER_POSTINGS.labels(reason).inc(count)


@event.listens_for(Session, "after_transaction_end")
def _forget_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost ended: what it committed is counted
        session.info.pop(_UNCOMMITTED, None)


@dataclass(frozen=True)
class Posted:
    entry: LedgerEntry
    # False when the idempotency key had already been used: nothing moved this time.
    applied: bool


async def find_entry(session: AsyncSession, idempotency_key: str) -> LedgerEntry | None:
    return (
        await session.execute(
            select(LedgerEntry).where(col(LedgerEntry.idempotency_key) == idempotency_key)
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
                    .where(col(Account.id) == account_id)
                    .values(balance=col(Account.balance) + amount, updated_at=utcnow())
                    .returning(col(Account.balance))
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
    _posted(session, reason)
    return Posted(entry, applied=True)


async def lock_account(session: AsyncSession, account_id: str) -> None:
    """Take the account's row lock in the caller's transaction, the lock every balance change
    takes: on PostgreSQL `SELECT … FOR UPDATE`; SQLite has no row locks but runs one write
    transaction at a time, so a write (that changes nothing) makes this transaction the
    writer, and its later reads see the latest data."""
    if _is_postgres(session):
        stmt = select(col(Account.id)).where(col(Account.id) == account_id).with_for_update()
        found = (await session.execute(stmt)).scalar_one_or_none()
    else:
        found = (
            await session.execute(
                update(Account)
                .where(col(Account.id) == account_id)
                .values(balance=col(Account.balance))
                .returning(col(Account.id))
                .execution_options(synchronize_session=False)
            )
        ).scalar_one_or_none()
    if found is None:
        raise NotFound("Account not found")


async def balance_of(session: AsyncSession, account_id: str) -> int:
    """The stored balance: one indexed row, never a sum over history."""
    value = await session.scalar(select(col(Account.balance)).where(col(Account.id) == account_id))
    if value is None:
        raise NotFound("Account not found")
    return int(value)


async def sum_of_entries(session: AsyncSession, account_id: str) -> int:
    """The audit side of the invariant (tests and reconciliation)."""
    total = await session.scalar(
        select(func.coalesce(func.sum(col(LedgerEntry.amount)), 0)).where(
            col(LedgerEntry.account_id) == account_id
        )
    )
    return int(total or 0)


@dataclass(frozen=True)
class Debit:
    """One debit of a batch: `amount` micro-credits (positive) taken from an account."""

    account_id: str
    amount: int
    idempotency_key: str
    reference_id: str | None = None


@dataclass(frozen=True)
class PostedDebits:
    # Per debit, in input order: the account's balance right after that debit.
    balances_after: list[int]
    # Accounts that are now below their enabled auto top-up threshold.
    below_threshold: list[str]


def _is_postgres(session: AsyncSession) -> bool:
    return dialect_name(session) == "postgresql"


_T = TypeVar("_T")


def _chunks(values: Sequence[_T], size: int = 500) -> list[Sequence[_T]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


async def post_debits(
    session: AsyncSession, debits: Sequence[Debit], *, reason: str
) -> PostedDebits:
    """`post_entry` for a whole batch: one entry per debit (with its running `balance_after`)
    and each account's balance moved by exactly the sum of its entries, with one atomic
    `UPDATE … RETURNING` per 500 accounts instead of one per debit.

    Runs in the caller's transaction. The caller filters out keys already used; a key reused
    concurrently fails the insert (IntegrityError) and the caller retries the whole batch.
    """
    for debit in debits:
        if not isinstance(debit.amount, int) or isinstance(debit.amount, bool) or debit.amount < 0:
            raise TypeError("debits are non-negative integers (micro-credits)")
    totals: dict[str, int] = defaultdict(int)
    for debit in debits:
        totals[debit.account_id] += debit.amount
    balances, below = await _subtract(session, dict(totals), utcnow())
    # Stamped once the rows are locked (their UPDATE), as `post_entry` stamps its entry: an
    # entry never carries a time before another writer's lock on its account was released,
    # which the promotions' settlement relies on (gateway/billing/promotions.py).
    now = utcnow()
    # Walk each account's debits in input order from its balance before this batch.
    running = {account_id: balances[account_id] + total for account_id, total in totals.items()}
    balances_after: list[int] = []
    entries: list[dict[str, object]] = []
    for debit in debits:
        running[debit.account_id] -= debit.amount
        balances_after.append(running[debit.account_id])
        entries.append(
            {
                "id": new_id("led"),
                "account_id": debit.account_id,
                "amount": -debit.amount,
                "balance_after": running[debit.account_id],
                "reason": reason,
                "reference_id": debit.reference_id,
                "idempotency_key": debit.idempotency_key,
                "created_at": now,
            }
        )
    if entries:
        await insert_rows(session, SQLModel.metadata.tables[LedgerEntry.__tablename__], entries)
        _posted(session, reason, len(entries))
    return PostedDebits(balances_after, below)


async def _subtract(
    session: AsyncSession, totals: dict[str, int], now: datetime
) -> tuple[dict[str, int], list[str]]:
    """Subtract each account's total: (account id → balance afterwards, accounts now below
    their auto top-up threshold)."""
    balances: dict[str, int] = {}
    below: list[str] = []
    postgres = _is_postgres(session)
    # PostgreSQL takes the ids as one array parameter, so the whole batch is one chunk there.
    for chunk in _chunks(sorted(totals), max(len(totals), 1) if postgres else 500):
        if postgres:
            if len(chunk) > 1:
                # Lock the rows in id order first, so concurrent batches queue, never deadlock.
                await session.execute(
                    select(col(Account.id))
                    .where(col(Account.id) == any_(literal(list(chunk), ARRAY(String()))))
                    .order_by(col(Account.id))
                    .with_for_update()
                )
            amounts = (
                func.unnest(
                    literal(list(chunk), ARRAY(String())),
                    literal([totals[a] for a in chunk], ARRAY(BigInteger())),
                )
                .table_valued(column("account_id", String()), column("amount", BigInteger()))
                .render_derived(name="amounts")
            )
            stmt = (
                update(Account)
                .where(col(Account.id) == amounts.c.account_id)
                .values(balance=col(Account.balance) - amounts.c.amount, updated_at=now)
            )
        else:
            amount = case(
                {a: literal(totals[a], BigInteger()) for a in chunk}, value=col(Account.id)
            )
            stmt = (
                update(Account)
                .where(col(Account.id).in_(chunk))
                .values(balance=col(Account.balance) - amount, updated_at=now)
            )
        # RETURNING shows the updated row: whether it now wants a top-up costs no query.
        wants_top_up = and_(
            col(Account.auto_top_up_enabled).is_(True),
            col(Account.balance) < col(Account.auto_top_up_threshold),
        )
        result = await session.execute(
            stmt.returning(col(Account.id), col(Account.balance), wants_top_up).execution_options(
                synchronize_session=False
            )
        )
        for account_id, balance, wanted in result.all():
            balances[account_id] = int(balance)
            if wanted:
                below.append(account_id)
    missing = set(totals) - set(balances)
    if missing:
        raise NotFound(f"Account not found: {sorted(missing)[0]}")
    return balances, below
