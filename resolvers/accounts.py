"""Billing accounts: which account a money operation acts on, and who may act on it.

A personal account is the caller's own (`/users/{id}/…` with their own id only); an
organization's account is for its owners and admins, except its balance, which any member reads.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from gateway.billing import promotions
from gateway.billing.ledger import balance_of as stored_balance
from gateway.db.models import Account, AccountKind, Organization, User
from resolvers import permissions
from resolvers.context import Context
from resolvers.permissions import OrgAccess, PersonalAccess


@dataclass(frozen=True)
class Balance:
    account_id: str
    amount: int
    currency: str
    user_id: str | None = None
    organization_id: str | None = None
    # The part of `amount` that expires (promotional credits) and when the next of it does.
    promotional_amount: int = 0
    promotional_expires_at: datetime | None = None


async def _load_or_create(
    ctx: Context, *, user_id: str | None, organization_id: str | None
) -> Account:
    loaders = ctx.loaders
    account: Account | None = (
        await loaders.account_by_user_id.load(user_id)
        if user_id is not None
        else await loaders.account_by_organization_id.load(organization_id)
    )
    if account is not None:
        return account
    # Accounts are created with their owner; this only repairs one that is missing.
    session = ctx.session
    try:
        async with session.begin_nested():
            account = Account(
                kind=(AccountKind.USER if user_id is not None else AccountKind.ORGANIZATION).value,
                user_id=user_id,
                organization_id=organization_id,
            )
            session.add(account)
            await session.flush()
        await session.commit()
    except IntegrityError:
        column = col(Account.user_id) if user_id is not None else col(Account.organization_id)
        account = (
            await session.execute(select(Account).where(column == (user_id or organization_id)))
        ).scalar_one()
    return account


async def personal_account(access: PersonalAccess) -> Account:
    """The caller's personal account."""
    return await _load_or_create(access.ctx, user_id=access.user_id, organization_id=None)


async def organization_account(access: OrgAccess) -> Account:
    """An organization's account, for the access the caller came with: a `ManagerAccess` to
    pay, set up billing or change the plan; any member's to read the balance and the plan."""
    return await _load_or_create(access.ctx, user_id=None, organization_id=access.organization_id)


async def organization_account_row(access: OrgAccess) -> Account:
    """The organization's account as a read-only row, for what only shows it (its balance,
    plan, plan history, billing settings): a plain read, which shares a statement with its
    siblings'. Created if missing, as `organization_account` (writers) does."""
    row = await organization_account_row_ahead(access.ctx, access.organization_id)
    return row if row is not None else await organization_account(access)


def organization_account_row_ahead(ctx: Context, organization_id: str) -> Awaitable[Account | None]:
    """The read `organization_account_row` makes, started before access is decided (a read
    ahead: schema/declare.py `reads_ahead`); it shows nothing."""
    return ctx.loaders.account_row_by_organization_id.load(organization_id)


async def billing_account(ctx: Context, *, organization_id: str | None = None) -> Account:
    """A billing mutation's account, named by its input: the organization's, for its owners
    and admins (`manager_access`), else the caller's personal one (`personal_account`)."""
    if organization_id:
        return await organization_account(await permissions.manager_access(ctx, organization_id))
    return await personal_account(permissions.personal_access(ctx))


async def settled_balance(ctx: Context, account: Account) -> Balance:
    """The balance with its promotional part, after expiring the promotional credits that are
    due (gateway/billing/promotions.py): a balance never shows credits past their expiry."""
    # Most accounts hold no promotional credits, which their row says: no statement more.
    if not account.holds_promotions:
        part, amount = promotions.NONE, int(account.balance)
    else:
        part = await promotions.settle(ctx.session, account.id, ctx.now)
        if part.wrote:
            await ctx.session.commit()
        # As stored now: `account` may be a row read before this or another settlement.
        amount = await stored_balance(ctx.session, account.id)
    return Balance(
        account_id=account.id,
        amount=amount,
        currency=account.currency,
        user_id=account.user_id,
        organization_id=account.organization_id,
        promotional_amount=min(part.amount, max(amount, 0)),
        promotional_expires_at=part.expires_at,
    )


async def user_balance(access: PersonalAccess) -> Balance:
    return await settled_balance(access.ctx, await personal_account(access))


async def organization_balance(access: OrgAccess) -> Balance:
    """Every member may read the organization's balance."""
    return await settled_balance(access.ctx, await organization_account_row(access))


async def owner_account(
    ctx: Context, *, user_id: str | None, organization_id: str | None
) -> Account:
    """The account of a user or an organization, for a caller already allowed to act on it
    (the service creating a promotion for it)."""
    return await _load_or_create(ctx, user_id=user_id, organization_id=organization_id)


async def own_personal_account(ctx: Context, user_id: str) -> Account | None:
    """`user_id`'s personal account if that is the caller, else None (GraphQL User fields).

    Read-only: a plain row (no ORM query, so no transaction opened for it), or the account
    created if it was missing. Writers use `personal_account`.
    """
    if not permissions.owns_personal_account(ctx, user_id):
        return None
    row: Account | None = await ctx.loaders.account_row_by_user_id.load(user_id)
    return (
        row
        if row is not None
        else await personal_account(permissions.personal_access(ctx, user_id))
    )


@dataclass(frozen=True)
class ActiveAccount:
    """Where a user's usage is billed: an organization they belong to, or their own account."""

    organization: Organization | None
    balance: Balance


async def active_account(ctx: Context, user_id: str) -> ActiveAccount | None:
    """The caller's active account (None on other users); a stale organization falls back
    to the personal account."""
    if not permissions.is_self(ctx, user_id):
        return None
    user: User | None = await ctx.loaders.user_by_id.load(user_id)
    org_id = user.active_organization_id if user is not None else None
    if org_id and await permissions.organization_membership(ctx, org_id) is not None:
        org = await ctx.loaders.organization_by_id.load(org_id)
        # A member (just read): the access cannot be refused, and costs no statement.
        access = await permissions.member_access(ctx, org_id)
        return ActiveAccount(org, await organization_balance(access))
    return ActiveAccount(None, await user_balance(permissions.personal_access(ctx, user_id)))
