"""Plans and seats: the plan catalog, and the subscription of a personal or organization account.

An account has at most one current (not canceled) subscription. Organizations subscribe to
`teams` plans with at least one seat per member; a personal account to an `individual` plan
with one seat. Writes are for owners and admins; any member reads the organization's plan.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.billing.payments import ensure_customer
from gateway.billing.providers import ProviderError
from gateway.billing.subscriptions import (
    PLAN_TYPES,
    SUBSCRIBED,
    NewSubscription,
    SubscriptionProvider,
    apply_state,
    settle_sandbox_periods,
    subscription_provider,
)
from gateway.db.models import (
    Account,
    Member,
    Plan,
    PlanHistory,
    Subscription,
    SubscriptionStatus,
    User,
    utcnow,
)
from gateway.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from gateway.ids import new_id
from resolvers import accounts, permissions
from resolvers.batching import load_each
from resolvers.context import Context
from resolvers.pagination import Page, PageArgs
from resolvers.payments import ProviderUnavailable
from resolvers.permissions import ManagerAccess, OrgAccess, PersonalAccess

MAX_SEATS = 10_000
NO_ORGANIZATION_PLAN = "No plan found for organization"
NO_USER_PLAN = "No plan found for user"
PLAN_NOT_FOUND = "Plan not found"


@dataclass(frozen=True)
class Subscribed:
    subscription: Subscription
    # Set when the first payment needs the customer to confirm it on the client.
    client_secret: str | None = None


@dataclass(frozen=True)
class PlanDetails:
    plan: Plan
    # The organization's current subscription when it is to this plan, else None.
    subscription: Subscription | None


def provider(ctx: Context) -> SubscriptionProvider:
    return subscription_provider(ctx.settings, ctx.services)


# --- catalog -------------------------------------------------------------------------------


async def list_plans(ctx: Context, plan_type: str | None = None) -> list[Plan]:
    """Plans on offer, optionally of one type (`individual` or `teams`), cheapest first."""
    ctx.user_id  # noqa: B018  (the catalog is for signed-in callers, like every route)
    if plan_type is not None and plan_type not in PLAN_TYPES:
        raise ValidationFailed("type must be one of: individual, teams", field="type")
    stmt = select(Plan).where(col(Plan.active).is_(True))
    if plan_type is not None:
        stmt = stmt.where(col(Plan.type) == plan_type)
    stmt = stmt.order_by(col(Plan.type), col(Plan.price_per_seat_cents), col(Plan.name))
    found = list((await ctx.session.execute(stmt)).scalars())
    for plan in found:
        ctx.loaders.plan_by_id.prime(plan.id, plan)
    return found


async def get_plan(ctx: Context, plan_id: str) -> Plan | None:
    """Any plan by id (retired ones too: existing subscriptions still point at them)."""
    ctx.user_id  # noqa: B018
    plan: Plan | None = await ctx.loaders.plan_by_id.load(plan_id)
    return plan


async def plan_or_404(ctx: Context, plan_id: str) -> Plan:
    plan = await get_plan(ctx, plan_id)
    if plan is None:
        raise NotFound(PLAN_NOT_FOUND)
    return plan


# --- reads -----------------------------------------------------------------------------------


async def current_subscription(ctx: Context, account: Account) -> Subscription | None:
    found: Subscription | None = await ctx.loaders.current_subscription_by_account_id.load(
        account.id
    )
    return found


async def organization_subscription(access: OrgAccess) -> Subscription | None:
    """The organization's current subscription (any member reads it), or None: a read-only
    row (writers: `current_subscription`)."""
    loaders = access.ctx.loaders
    found: Subscription | None = await loaders.current_subscription_row_by_organization_id.load(
        access.organization_id
    )
    return found


async def organization_subscriptions(
    accesses: Sequence[OrgAccess | Exception],
) -> list[Subscription | Exception | None]:
    """`organization_subscription` of several organizations at once, in order; an error
    (an access refused) stays that organization's."""
    granted = [access for access in accesses if not isinstance(access, Exception)]
    found: list[Subscription | Exception | None] = []
    if granted:
        loader = granted[0].ctx.loaders.current_subscription_row_by_organization_id
        loaded = await load_each(loader, [access.organization_id for access in granted])
        found.extend(loaded)
    rows = iter(found)
    return [access if isinstance(access, Exception) else next(rows) for access in accesses]


def organization_subscription_ahead(
    ctx: Context, organization_id: str
) -> Awaitable[Subscription | None]:
    """The read `organization_subscriptions` makes for one organization, started before
    access is decided (a read ahead: schema/declare.py `reads_ahead`); it shows nothing."""
    return ctx.loaders.current_subscription_row_by_organization_id.load(organization_id)


async def require_organization_subscription(access: OrgAccess) -> Subscription:
    found = await organization_subscription(access)
    if found is None:
        raise NotFound(NO_ORGANIZATION_PLAN)
    return found


async def user_subscription(access: PersonalAccess) -> Subscription | None:
    """The caller's individual subscription (on their personal account), or None."""
    return await current_subscription(access.ctx, await accounts.personal_account(access))


async def visible_user_subscription(ctx: Context, user_id: str) -> Subscription | None:
    """`User.subscription`: the caller's own individual subscription; None on anyone else."""
    if not permissions.owns_personal_account(ctx, user_id):
        return None
    return await user_subscription(permissions.personal_access(ctx, user_id))


async def require_user_subscription(access: PersonalAccess) -> Subscription:
    found = await user_subscription(access)
    if found is None:
        raise NotFound(NO_USER_PLAN)
    return found


async def visible_subscription(ctx: Context, subscription_id: str) -> Subscription | None:
    """A subscription the caller may read (their own, or their organization's), else None."""
    ctx.user_id  # noqa: B018
    found = await ctx.loaders.subscription_by_id.load(subscription_id)
    if found is None:
        return None
    seen = await permissions.may_read_account(ctx, found.account_id, managers_only=False)
    return found if seen else None


async def organization_of(ctx: Context, subscription: Subscription) -> str | None:
    """The organization id a subscription bills, or None for a personal one."""
    account: Account | None = await ctx.loaders.account_by_id.load(subscription.account_id)
    return account.organization_id if account is not None else None


async def user_of(ctx: Context, subscription: Subscription) -> str | None:
    account: Account | None = await ctx.loaders.account_by_id.load(subscription.account_id)
    return account.user_id if account is not None else None


async def latest_history_id(ctx: Context, subscription: Subscription) -> str | None:
    found: str | None = await ctx.loaders.latest_plan_history_id_by_subscription_id.load(
        subscription.id
    )
    return found


async def plan_history_page(ctx: Context, access: OrgAccess, args: PageArgs) -> Page[PlanHistory]:
    """The organization's plan changes, newest first (any member reads them). Its account is
    found in the page's statement: none yet, no changes."""
    return await plan_history_page_ahead(ctx, access.organization_id, args)


def plan_history_page_ahead(
    ctx: Context, organization_id: str, args: PageArgs
) -> Awaitable[Page[PlanHistory]]:
    """The read `plan_history_page` makes, started before access is decided (a read ahead:
    schema/declare.py `reads_ahead`); it shows nothing."""
    return ctx.loaders.plan_history_pages_by_organization_id.load((organization_id, args))


async def plan_details(access: OrgAccess, plan_id: str) -> PlanDetails:
    """A plan, with the organization's subscription to it (or None)."""
    current = await organization_subscription(access)
    plan = await plan_or_404(access.ctx, plan_id)
    return PlanDetails(
        plan, current if current is not None and current.plan_id == plan.id else None
    )


# --- writes ----------------------------------------------------------------------------------


def check_seats(seats: int) -> None:
    if isinstance(seats, bool) or not isinstance(seats, int) or not 1 <= seats <= MAX_SEATS:
        raise ValidationFailed(f"seats must be between 1 and {MAX_SEATS}", field="seats")


async def member_count_now(session: AsyncSession, organization_id: str) -> int:
    """The organization's members as committed now (under `locked_current`, no loader)."""
    count = await session.scalar(
        select(func.count()).where(col(Member.organization_id) == organization_id)
    )
    return int(count or 0)


async def check_members_fit(ctx: Context, account: Account, seats: int) -> None:
    """Refuse fewer seats than members (422); counted afresh, so under `locked_current` no
    member can join in between (joining takes the same lock: `plan_changes.hold_seat`)."""
    if account.organization_id is None:
        if seats != 1:
            raise Unprocessable("An individual plan has exactly one seat", field="seats")
        return
    members = await member_count_now(ctx.session, account.organization_id)
    if seats < members:
        raise Unprocessable(
            f"seats must be at least the number of members ({members})", field="seats"
        )


async def locked_current(ctx: Context, account_id: str) -> Subscription | None:
    """The account's current subscription, read under a lock on the account row so concurrent
    subscribes / seat or plan changes / cancels / joins of one account run one after the other.

    On the sandbox, periods that are over end first (`settle_sandbox_periods`): a cancellation
    that took effect leaves no current subscription."""
    session = ctx.session
    # A no-op UPDATE takes the row lock on PostgreSQL and the write lock on SQLite.
    await session.execute(
        update(Account)
        .where(col(Account.id) == account_id)
        .values(updated_at=col(Account.updated_at))
    )
    stmt = (
        select(Subscription)
        .where(
            col(Subscription.account_id) == account_id,
            col(Subscription.status) != SubscriptionStatus.CANCELED.value,
        )
        .order_by(col(Subscription.id).desc())
        .limit(1)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    found: Subscription | None = (await session.execute(stmt)).scalar_one_or_none()
    if found is not None and provider(ctx).name == "sandbox":
        await settle_sandbox_periods(session, found, utcnow())
        if found.status == SubscriptionStatus.CANCELED.value:
            return None
    return found


async def _customer_id(ctx: Context, account: Account) -> str | None:
    """The account's customer at the payment provider (Stripe only; created on first need)."""
    if provider(ctx).name != "stripe":
        return None
    payments = getattr(ctx.services, "payments", None)
    if payments is None:
        raise ProviderUnavailable("Payments are not configured")
    email = None
    if account.user_id is not None:
        user: User | None = await ctx.loaders.user_by_id.load(account.user_id)
        email = user.email if user is not None else None
    try:
        return await ensure_customer(ctx.session, payments, account, email)
    except ProviderError as exc:
        raise ProviderUnavailable(f"The payment provider refused the request: {exc}") from exc


def not_subscribed(account: Account) -> NotFound:
    return NotFound(NO_ORGANIZATION_PLAN if account.organization_id else NO_USER_PLAN)


async def subscribe(
    ctx: Context, *, organization_id: str | None, plan_id: str, seats: int
) -> Subscribed:
    """Subscribe an organization (owner/admin), or with no organization the caller, to a plan.

    409 when the account already has a plan (change its seats instead).
    """
    account = await accounts.billing_account(ctx, organization_id=organization_id)
    check_seats(seats)
    plan = await offered_plan(ctx, account, plan_id)
    current = await current_subscription(ctx, account)
    # One whose period is over may have ended (a cancellation took effect): the lock decides.
    if current is not None and not _period_over(current):
        raise Conflict(_already_subscribed(account))
    customer_id = await _customer_id(ctx, account)  # may commit the new customer id
    session = ctx.session
    if await locked_current(ctx, account.id) is not None:
        raise Conflict(_already_subscribed(account))
    await check_members_fit(ctx, account, seats)
    subscription_id = new_id("sub")
    try:
        state = await provider(ctx).create(
            NewSubscription(
                account=account,
                customer_id=customer_id,
                plan=plan,
                seats=seats,
                subscription_id=subscription_id,
            )
        )
    except ProviderError as exc:
        raise ProviderUnavailable(f"The payment provider refused the request: {exc}") from exc
    subscription = Subscription(
        id=subscription_id,
        account_id=account.id,
        plan_id=plan.id,
        seats=state.seats,
        status=state.status,
        current_period_start=state.current_period_start,
        current_period_end=state.current_period_end,
        cancel_at=state.cancel_at,
        canceled_at=state.canceled_at,
        provider_subscription_id=state.provider_subscription_id,
    )
    session.add(subscription)
    await session.flush()
    session.add(
        PlanHistory(
            subscription_id=subscription.id,
            account_id=account.id,
            plan_id=plan.id,
            seats=subscription.seats,
            action=SUBSCRIBED,
        )
    )
    await session.commit()
    return Subscribed(subscription, state.client_secret)


def _period_over(subscription: Subscription) -> bool:
    end = subscription.current_period_end
    return end is not None and end <= utcnow()


async def offered_plan(ctx: Context, account: Account, plan_id: str) -> Plan:
    """A plan the account may move to: still offered, and of its kind (teams or individual)."""
    plan = await plan_or_404(ctx, plan_id)
    if not plan.active:
        raise Unprocessable("This plan is no longer offered", field="planId")
    wanted = "teams" if account.organization_id else "individual"
    if plan.type != wanted:
        raise Unprocessable(
            "Organizations subscribe to teams plans"
            if wanted == "teams"
            else "Personal accounts subscribe to individual plans",
            field="planId",
        )
    return plan


def _already_subscribed(account: Account) -> str:
    if account.organization_id:
        return "The organization already has a plan: change its seats instead"
    return "You already have a plan"


async def change_seats(access: ManagerAccess, *, seats: int) -> Subscription:
    """Set the organization's seat count (owner/admin); never fewer than its members."""
    ctx, account = access.ctx, await accounts.organization_account(access)
    check_seats(seats)
    if await current_subscription(ctx, account) is None:
        raise not_subscribed(account)
    session = ctx.session
    subscription = await locked_current(ctx, account.id)
    if subscription is None:
        raise not_subscribed(account)
    await check_members_fit(ctx, account, seats)
    if subscription.seats == seats:
        await session.commit()  # what settling the sandbox's periods wrote, if anything
        return subscription
    plan = await plan_or_404(ctx, subscription.plan_id)
    try:
        state = await provider(ctx).change_seats(subscription=subscription, plan=plan, seats=seats)
    except ProviderError as exc:
        raise ProviderUnavailable(f"The payment provider refused the request: {exc}") from exc
    await apply_state(session, subscription, state)
    await session.commit()
    return subscription


async def cancel_subscription(
    ctx: Context, *, organization_id: str | None, plan_id: str
) -> Subscription:
    """Cancel at the end of the current period (owner/admin, or the caller's own plan).

    Canceling again returns the subscription unchanged.
    """
    account = await accounts.billing_account(ctx, organization_id=organization_id)
    current = await current_subscription(ctx, account)
    if current is None:
        raise not_subscribed(account)
    if current.plan_id != plan_id:
        raise NotFound(
            "The organization is not subscribed to this plan"
            if account.organization_id
            else "You are not subscribed to this plan"
        )
    if current.cancel_at is not None:
        return current
    session = ctx.session
    subscription = await locked_current(ctx, account.id)
    if subscription is None or subscription.id != current.id:
        raise not_subscribed(account)
    if subscription.cancel_at is not None:
        return subscription
    try:
        state = await provider(ctx).cancel_at_period_end(subscription=subscription)
    except ProviderError as exc:
        raise ProviderUnavailable(f"The payment provider refused the request: {exc}") from exc
    await apply_state(session, subscription, state)
    await session.commit()
    return subscription
