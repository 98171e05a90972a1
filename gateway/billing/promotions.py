"""Promotional credits: spent first, and what is left of them leaves the balance at expiry.

A redemption keeps its unspent credits (`remaining`) as of a time (`settled_at`). Spending
after that time is not tracked on the hot path (usage debits stay one statement per batch):
settling an account replays its ledger debits since then, in time order, against its live
redemptions, soonest expiry first, and posts one `promotion_expiry` entry per redemption whose
expiry has passed, for what was still unspent at that instant. So the promotional part is
exact whenever it is settled: on a balance read, before a redemption, and by the sweep
(`gateway promotions expire`).

Why promotional credits first: they are the ones that can be lost; paid credits never expire.
Among them, the soonest expiry first, for the same reason.

Concurrency: a settlement that writes holds the account's row lock (`ledger.lock_account`, the
lock every balance change takes) and reads the redemptions again under it, so two settlements
of one account run one after the other and the second finds nothing left to expire; the
expiry entry's idempotency key (`promotion-expiry:<redemption id>`) holds even if they did not.
Every ledger entry is stamped while its writer holds that lock, so the entries a settlement
replays (those before its start) are all committed when it holds the lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.billing.ledger import lock_account, post_entry
from gateway.db.models import Account, LedgerEntry, PromotionRedemption

EXPIRY_REASON = "promotion_expiry"


@dataclass(frozen=True)
class PromotionalPart:
    """The unspent promotional credits of an account and when the next of them expire."""

    amount: int
    expires_at: datetime | None
    # Whether this settlement wrote (expired credits, or moved `settled_at`): the caller commits.
    wrote: bool = False
    expired: int = 0


NONE = PromotionalPart(0, None)


async def _live(session: AsyncSession, account_id: str) -> list[PromotionRedemption]:
    stmt = (
        select(PromotionRedemption)
        .where(
            col(PromotionRedemption.account_id) == account_id,
            col(PromotionRedemption.remaining) > 0,
            col(PromotionRedemption.expired_at).is_(None),
        )
        .order_by(col(PromotionRedemption.expires_at), col(PromotionRedemption.id))
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(stmt)).scalars())


async def _spent(
    session: AsyncSession,
    account_id: str,
    since: datetime,
    until: datetime,
    bounds: Sequence[datetime],
) -> dict[int, int]:
    """Debits from `since` to before `until`, summed per interval between the expiries
    `bounds` (sorted): interval i ends at bounds[i], the last one at `until` (the next
    settlement starts there)."""
    created = col(LedgerEntry.created_at)
    # With no expiry in between, one interval (every entry is before `until`).
    whens = [(created < bound, i) for i, bound in enumerate(bounds)] or [(created < until, 0)]
    bucket = case(*whens, else_=len(bounds)).label("bucket")
    stmt = (
        select(bucket, func.sum(-col(LedgerEntry.amount)))
        .where(
            col(LedgerEntry.account_id) == account_id,
            col(LedgerEntry.amount) < 0,
            col(LedgerEntry.reason) != EXPIRY_REASON,
            created >= since,
            created < until,
        )
        .group_by(bucket)
    )
    return {int(i): int(total or 0) for i, total in (await session.execute(stmt)).all()}


def _aware(value: datetime | None) -> datetime:
    assert value is not None  # every live redemption has an expiry and a settlement time
    return value


@dataclass
class _Replay:
    left: dict[int, int]
    expired: list[tuple[PromotionRedemption, int]]


def _replay(
    live: Sequence[PromotionRedemption], spent: dict[int, int], bounds: Sequence[datetime]
) -> _Replay:
    """Spend each interval's debits from the live redemptions soonest expiry first; at each
    bound, the redemptions expiring then keep what they had left, to expire."""
    left = {_id(r): int(r.remaining) for r in live}
    gone: set[int] = set()
    expired: list[tuple[PromotionRedemption, int]] = []
    for i in range(len(bounds) + 1):
        spend = spent.get(i, 0)
        for redemption in live:
            if spend <= 0:
                break
            key = _id(redemption)
            if key in gone:
                continue
            taken = min(left[key], spend)
            left[key] -= taken
            spend -= taken
        if i < len(bounds):
            for redemption in live:
                key = _id(redemption)
                if key not in gone and _aware(redemption.expires_at) <= bounds[i]:
                    gone.add(key)
                    expired.append((redemption, left[key]))
                    left[key] = 0
    return _Replay(left, expired)


def _id(redemption: PromotionRedemption) -> int:
    assert redemption.id is not None
    return redemption.id


async def settle(
    session: AsyncSession, account_id: str, now: datetime, *, write: bool = False
) -> PromotionalPart:
    """The account's promotional part as of `now`. Expires what is due (a ledger entry per
    redemption, in the caller's transaction: it commits when `wrote`). `write`: also record
    the replayed spending, so that credits granted next are spent only after `now` (before a
    redemption)."""
    live = await _live(session, account_id)
    if not live:
        return NONE
    due = _aware(live[0].expires_at) <= now
    if due or write:
        await lock_account(session, account_id)
        live = await _live(session, account_id)
        if not live:
            await _holds_promotions(session, account_id, False)
            return PromotionalPart(0, None, wrote=True)
    since = min(_aware(r.settled_at) for r in live)
    bounds = sorted({_aware(r.expires_at) for r in live if _aware(r.expires_at) <= now})
    replay = _replay(live, await _spent(session, account_id, since, now, bounds), bounds)
    alive = [r for r in live if _aware(r.expires_at) > now]
    part = PromotionalPart(
        amount=sum(replay.left[_id(r)] for r in alive),
        expires_at=next((r.expires_at for r in alive if replay.left[_id(r)] > 0), None),
    )
    if not (due or write):
        return part
    expired_total = 0
    for redemption, unspent in replay.expired:
        if unspent > 0:
            posted = await post_entry(
                session,
                account_id=account_id,
                amount=-unspent,
                reason=EXPIRY_REASON,
                idempotency_key=f"promotion-expiry:{_id(redemption)}",
                reference_id=redemption.promotion_id,
            )
            expired_total += unspent if posted.applied else 0
        await _record(session, redemption, remaining=0, now=now, expired=True)
    for redemption in alive:
        await _record(session, redemption, remaining=replay.left[_id(redemption)], now=now)
    if not any(replay.left[_id(r)] > 0 for r in alive):
        await _holds_promotions(session, account_id, False)
    return PromotionalPart(part.amount, part.expires_at, wrote=True, expired=expired_total)


async def holds_promotions(session: AsyncSession, account_id: str) -> None:
    """Mark the account as holding promotional credits: in the transaction of the redemption
    that grants them, under the account's lock (`Account.holds_promotions`)."""
    await _holds_promotions(session, account_id, True)


async def _holds_promotions(session: AsyncSession, account_id: str, value: bool) -> None:
    await session.execute(
        update(Account)
        .where(col(Account.id) == account_id)
        .values(holds_promotions=value)
        .execution_options(synchronize_session=False)
    )


async def _record(
    session: AsyncSession,
    redemption: PromotionRedemption,
    *,
    remaining: int,
    now: datetime,
    expired: bool = False,
) -> None:
    values: dict[str, object] = {"remaining": remaining, "settled_at": now}
    if expired:
        values["expired_at"] = now
    await session.execute(
        update(PromotionRedemption)
        .where(col(PromotionRedemption.id) == _id(redemption))
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def accounts_due(session: AsyncSession, now: datetime, limit: int) -> list[str]:
    """Accounts with promotional credits past their expiry and not yet settled (the sweep)."""
    stmt = (
        select(col(PromotionRedemption.account_id))
        .where(
            col(PromotionRedemption.remaining) > 0,
            col(PromotionRedemption.expired_at).is_(None),
            col(PromotionRedemption.expires_at) <= now,
        )
        .group_by(col(PromotionRedemption.account_id))
        .order_by(col(PromotionRedemption.account_id))
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())
