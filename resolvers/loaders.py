"""Every DataLoader, created fresh per request on the Context: one query per (entity, key) level."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, TypeVar

from aiodataloader import DataLoader
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.db.models import (
    Account,
    ApiKey,
    Invite,
    InviteStatus,
    Member,
    Organization,
    Payment,
    Plan,
    PlanHistory,
    Subscription,
    SubscriptionStatus,
    UsageRecord,
    User,
)
from resolvers.pagination import Page, PageArgs, pages_by_parent

K = TypeVar("K", bound=Hashable)


def _loader(batch: Callable[[list[Any]], Awaitable[list[Any]]]) -> DataLoader:
    return DataLoader(batch_load_fn=batch, max_batch_size=1000)


def _rows_by_key(
    session: AsyncSession, model: Any, column: Any, where: Sequence[Any] = ()
) -> DataLoader:
    """key → the one row whose `column` equals it (or None)."""

    async def batch(keys: list[Any]) -> list[Any]:
        stmt = select(model).where(column.in_(keys), *where)
        found = {getattr(row, column.key): row for row in (await session.execute(stmt)).scalars()}
        return [found.get(key) for key in keys]

    return _loader(batch)


def _lists_by_key(
    session: AsyncSession, model: Any, column: Any, order_by: Any, where: Sequence[Any] = ()
) -> DataLoader:
    """key → every row whose `column` equals it, in `order_by` order (small, bounded lists)."""

    async def batch(keys: list[Any]) -> list[Any]:
        stmt = select(model).where(column.in_(keys), *where).order_by(order_by)
        grouped: dict[Any, list[Any]] = defaultdict(list)
        for row in (await session.execute(stmt)).scalars():
            grouped[getattr(row, column.key)].append(row)
        return [grouped.get(key, []) for key in keys]

    return _loader(batch)


def _pages_by_key(
    session: AsyncSession,
    model: Any,
    column: Any,
    *,
    newest_first: bool,
    where: Sequence[Any] = (),
) -> DataLoader:
    """(parent id, PageArgs) → Page: parents sharing the same arguments load in one query."""

    async def batch(keys: list[tuple[str, PageArgs]]) -> list[Page[Any]]:
        by_args: dict[PageArgs, list[str]] = defaultdict(list)
        for parent_id, args in keys:
            by_args[args].append(parent_id)
        results: dict[tuple[str, PageArgs], Page[Any]] = {}
        for args, parent_ids in by_args.items():
            pages = await pages_by_parent(
                session,
                model,
                column,
                list(dict.fromkeys(parent_ids)),
                args,
                where=where,
                newest_first=newest_first,
            )
            for parent_id, page in pages.items():
                results[(parent_id, args)] = page
        return [results[key] for key in keys]

    return _loader(batch)


def _counts_by_key(
    session: AsyncSession, model: Any, column: Any, where: Sequence[Any] = ()
) -> DataLoader:
    async def batch(keys: list[str]) -> list[int]:
        stmt = (
            select(column, func.count())
            .select_from(model)
            .where(column.in_(keys), *where)
            .group_by(column)
        )
        counts: dict[Any, int] = {key: n for key, n in (await session.execute(stmt)).all()}
        return [int(counts.get(key, 0)) for key in keys]

    return _loader(batch)


def _latest_ids_by_key(session: AsyncSession, model: Any, column: Any) -> DataLoader:
    """key → the id of its newest row (ids sort by creation time), or None."""

    async def batch(keys: list[Any]) -> list[str | None]:
        stmt = select(column, func.max(model.id)).where(column.in_(keys)).group_by(column)
        latest: dict[Any, str] = {key: found for key, found in await session.execute(stmt)}
        return [latest.get(key) for key in keys]

    return _loader(batch)


def _member_usage_pages(session: AsyncSession) -> DataLoader:
    """(organization id, user id, PageArgs) → that member's usage in that org, newest first."""

    async def batch(keys: list[tuple[str, str, PageArgs]]) -> list[Page[Any]]:
        groups: dict[tuple[str, PageArgs], list[str]] = defaultdict(list)
        for org_id, user_id, args in keys:
            groups[(org_id, args)].append(user_id)
        results: dict[tuple[str, str, PageArgs], Page[Any]] = {}
        for (org_id, args), user_ids in groups.items():
            pages = await pages_by_parent(
                session,
                UsageRecord,
                UsageRecord.user_id,
                list(dict.fromkeys(user_ids)),
                args,
                where=[UsageRecord.organization_id == org_id],
            )
            for user_id, page in pages.items():
                results[(org_id, user_id, args)] = page
        return [results[key] for key in keys]

    return _loader(batch)


def _members_by_org_and_user(session: AsyncSession) -> DataLoader:
    """(organization id, user id) → Member or None."""

    async def batch(keys: list[tuple[str, str]]) -> list[Member | None]:
        org_ids = list({org for org, _ in keys})
        user_ids = list({user for _, user in keys})
        stmt = select(Member).where(
            col(Member.organization_id).in_(org_ids), col(Member.user_id).in_(user_ids)
        )
        found = {
            (row.organization_id, row.user_id): row
            for row in (await session.execute(stmt)).scalars()
        }
        return [found.get(key) for key in keys]

    return _loader(batch)


class Loaders:
    """Named for what they load; attribute access keeps call sites greppable."""

    def __init__(self, context: Any) -> None:
        session: AsyncSession = context.session
        live_org = [Organization.deleted_at.is_(None)]
        self.user_by_id = _rows_by_key(session, User, User.id)
        self.organization_by_id = _rows_by_key(session, Organization, Organization.id, live_org)
        self.member_by_id = _rows_by_key(session, Member, Member.id)
        self.member_by_organization_and_user = _members_by_org_and_user(session)
        self.invite_by_id = _rows_by_key(session, Invite, Invite.id)
        self.plan_by_id = _rows_by_key(session, Plan, Plan.id)
        self.payment_by_id = _rows_by_key(session, Payment, Payment.id)
        self.api_key_by_id = _rows_by_key(session, ApiKey, ApiKey.id)
        self.usage_by_id = _rows_by_key(session, UsageRecord, UsageRecord.id)
        self.subscription_by_id = _rows_by_key(session, Subscription, Subscription.id)
        self.account_by_id = _rows_by_key(session, Account, Account.id)
        self.account_by_user_id = _rows_by_key(session, Account, Account.user_id)
        self.account_by_organization_id = _rows_by_key(session, Account, Account.organization_id)
        self.current_subscription_by_account_id = _rows_by_key(
            session,
            Subscription,
            Subscription.account_id,
            [Subscription.status != SubscriptionStatus.CANCELED.value],
        )
        self.plan_history_pages_by_account_id = _pages_by_key(
            session, PlanHistory, PlanHistory.account_id, newest_first=True
        )
        self.latest_plan_history_id_by_subscription_id = _latest_ids_by_key(
            session, PlanHistory, PlanHistory.subscription_id
        )
        self.members_by_user_id = _lists_by_key(session, Member, Member.user_id, Member.id)
        self.member_pages_by_organization_id = _pages_by_key(
            session, Member, Member.organization_id, newest_first=False
        )
        self.member_count_by_organization_id = _counts_by_key(
            session, Member, Member.organization_id
        )
        pending = [Invite.status == InviteStatus.PENDING.value]
        self.invite_pages_by_organization_id = _pages_by_key(
            session, Invite, Invite.organization_id, newest_first=True, where=pending
        )
        self.invite_count_by_organization_id = _counts_by_key(
            session, Invite, Invite.organization_id, pending
        )
        live_key = [ApiKey.revoked_at.is_(None)]
        self.api_key_pages_by_user_id = _pages_by_key(
            session, ApiKey, ApiKey.user_id, newest_first=True, where=live_key
        )
        self.api_key_pages_by_organization_id = _pages_by_key(
            session, ApiKey, ApiKey.organization_id, newest_first=True, where=live_key
        )
        self.payment_pages_by_account_id = _pages_by_key(
            session, Payment, Payment.account_id, newest_first=True
        )
        self.succeeded_payment_pages_by_account_id = _pages_by_key(
            session,
            Payment,
            Payment.account_id,
            newest_first=True,
            where=[Payment.status == "succeeded"],
        )
        self.usage_pages_by_user_id = _pages_by_key(
            session, UsageRecord, UsageRecord.user_id, newest_first=True
        )
        self.usage_pages_by_organization_id = _pages_by_key(
            session, UsageRecord, UsageRecord.organization_id, newest_first=True
        )
        self.usage_pages_by_member = _member_usage_pages(session)
