"""Plans and seats: the plan catalog, and the subscription of a personal or organization account.

An account has at most one current (not canceled) subscription. Organizations subscribe to
`teams` plans with at least one seat per member; a personal account to an `individual` plan
with one seat. Writes are for owners and admins; any member reads the organization's plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Required, TypedDict

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.billing.payments import ensure_customer
from gateway.billing.providers import ProviderError
from gateway.billing.subscriptions import (
    INTERVAL_MONTHS,
    PLAN_TYPES,
    SUBSCRIBED,
    NewSubscription,
    SubscriptionProvider,
    apply_state,
    subscription_provider,
)
from gateway.db.models import (
    Account,
    Plan,
    PlanHistory,
    Subscription,
    SubscriptionStatus,
    User,
)
from gateway.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from gateway.ids import new_id
from resolvers import accounts, permissions
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


def _provider(ctx: Context) -> SubscriptionProvider:
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


async def _plan_or_404(ctx: Context, plan_id: str) -> Plan:
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
    """The organization's current subscription (any member reads it), or None."""
    return await current_subscription(access.ctx, await accounts.organization_account(access))


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
    """The organization's plan changes, newest first (any member reads them)."""
    account = await accounts.organization_account(access)
    page: Page[PlanHistory] = await ctx.loaders.plan_history_pages_by_account_id.load(
        (account.id, args)
    )
    return page


async def plan_details(access: OrgAccess, plan_id: str) -> PlanDetails:
    """A plan, with the organization's subscription to it (or None)."""
    current = await organization_subscription(access)
    plan = await _plan_or_404(access.ctx, plan_id)
    return PlanDetails(
        plan, current if current is not None and current.plan_id == plan.id else None
    )


# --- writes ----------------------------------------------------------------------------------


def _check_seats(seats: int) -> None:
    if isinstance(seats, bool) or not isinstance(seats, int) or not 1 <= seats <= MAX_SEATS:
        raise ValidationFailed(f"seats must be between 1 and {MAX_SEATS}", field="seats")


async def _check_members_fit(ctx: Context, account: Account, seats: int) -> None:
    if account.organization_id is None:
        if seats != 1:
            raise Unprocessable("An individual plan has exactly one seat", field="seats")
        return
    members = int(await ctx.loaders.member_count_by_organization_id.load(account.organization_id))
    if seats < members:
        raise Unprocessable(
            f"seats must be at least the number of members ({members})", field="seats"
        )


async def _locked_current(session: AsyncSession, account_id: str) -> Subscription | None:
    """The account's current subscription, read under a lock on the account row so concurrent
    subscribes / seat changes / cancels of one account run one after the other."""
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
    return found


async def _customer_id(ctx: Context, account: Account) -> str | None:
    """The account's customer at the payment provider (Stripe only; created on first need)."""
    if _provider(ctx).name != "stripe":
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


def _not_subscribed(account: Account) -> NotFound:
    return NotFound(NO_ORGANIZATION_PLAN if account.organization_id else NO_USER_PLAN)


async def subscribe(
    ctx: Context, *, organization_id: str | None, plan_id: str, seats: int
) -> Subscribed:
    """Subscribe an organization (owner/admin), or with no organization the caller, to a plan.

    409 when the account already has a plan (change its seats instead).
    """
    account = await accounts.billing_account(ctx, organization_id=organization_id)
    _check_seats(seats)
    plan = await _plan_or_404(ctx, plan_id)
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
    if await current_subscription(ctx, account) is not None:
        raise Conflict(_already_subscribed(account))
    await _check_members_fit(ctx, account, seats)
    customer_id = await _customer_id(ctx, account)  # may commit the new customer id
    session = ctx.session
    if await _locked_current(session, account.id) is not None:
        raise Conflict(_already_subscribed(account))
    subscription_id = new_id("sub")
    try:
        state = await _provider(ctx).create(
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


def _already_subscribed(account: Account) -> str:
    if account.organization_id:
        return "The organization already has a plan: change its seats instead"
    return "You already have a plan"


async def change_seats(access: ManagerAccess, *, seats: int) -> Subscription:
    """Set the organization's seat count (owner/admin); never fewer than its members."""
    ctx, account = access.ctx, await accounts.organization_account(access)
    _check_seats(seats)
    if await current_subscription(ctx, account) is None:
        raise _not_subscribed(account)
    await _check_members_fit(ctx, account, seats)
    session = ctx.session
    subscription = await _locked_current(session, account.id)
    if subscription is None:
        raise _not_subscribed(account)
    if subscription.seats == seats:
        return subscription
    plan = await _plan_or_404(ctx, subscription.plan_id)
    try:
        state = await _provider(ctx).change_seats(subscription=subscription, plan=plan, seats=seats)
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
        raise _not_subscribed(account)
    if current.plan_id != plan_id:
        raise NotFound(
            "The organization is not subscribed to this plan"
            if account.organization_id
            else "You are not subscribed to this plan"
        )
    if current.cancel_at is not None:
        return current
    session = ctx.session
    subscription = await _locked_current(session, account.id)
    if subscription is None or subscription.id != current.id:
        raise _not_subscribed(account)
    if subscription.cancel_at is not None:
        return subscription
    try:
        state = await _provider(ctx).cancel_at_period_end(subscription=subscription)
    except ProviderError as exc:
        raise ProviderUnavailable(f"The payment provider refused the request: {exc}") from exc
    await apply_state(session, subscription, state)
    await session.commit()
    return subscription


# --- seeding ---------------------------------------------------------------------------------


class PlanSpec(TypedDict, total=False):
    """A plan to seed, by name: the `Plan` fields a seed may set."""

    name: Required[str]
    display_name: Required[str]
    type: Required[str]
    interval: Required[str]
    price_per_seat_cents: Required[int]
    features: list[str]
    provider_price_id: str | None
    active: bool


DEFAULT_PLANS: tuple[PlanSpec, ...] = (
    {
        "name": "pro-monthly",
        "display_name": "Pro",
        "type": "individual",
        "interval": "Monthly",
        "price_per_seat_cents": 2_000,
        "features": ["All models", "Web search", "Priority support"],
    },
    {
        "name": "pro-yearly",
        "display_name": "Pro (yearly)",
        "type": "individual",
        "interval": "Yearly",
        "price_per_seat_cents": 20_000,
        "features": ["All models", "Web search", "Priority support", "Two months free"],
    },
    {
        "name": "teams-monthly",
        "display_name": "Teams",
        "type": "teams",
        "interval": "Monthly",
        "price_per_seat_cents": 3_000,
        "features": ["All models", "Web search", "Shared billing", "Usage by member"],
    },
    {
        "name": "teams-yearly",
        "display_name": "Teams (yearly)",
        "type": "teams",
        "interval": "Yearly",
        "price_per_seat_cents": 30_000,
        "features": ["All models", "Web search", "Shared billing", "Usage by member"],
    },
)


def _validated_plan_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A seed's plan checked against `PlanSpec` (a seed file's JSON: untyped until here)."""
    keys = {
        "name",
        "display_name",
        "type",
        "interval",
        "price_per_seat_cents",
        "features",
        "provider_price_id",
        "active",
    }
    unknown = set(spec) - keys
    if unknown:
        raise ValidationFailed(f"Unknown plan fields: {', '.join(sorted(unknown))}")
    for required in ("name", "display_name", "type", "interval", "price_per_seat_cents"):
        if required not in spec:
            raise ValidationFailed(f"A plan needs {required}", field=required)
    if spec["type"] not in PLAN_TYPES:
        raise ValidationFailed("type must be individual or teams", field="type")
    if spec["interval"] not in INTERVAL_MONTHS:
        raise ValidationFailed("interval must be Monthly or Yearly", field="interval")
    price = spec["price_per_seat_cents"]
    if isinstance(price, bool) or not isinstance(price, int) or price < 0:
        raise ValidationFailed("price_per_seat_cents must be an integer >= 0")
    features = spec.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise ValidationFailed("features must be a list of strings", field="features")
    return spec


async def seed_plans(
    session: AsyncSession, specs: Iterable[Mapping[str, object]] = DEFAULT_PLANS
) -> list[tuple[Plan, bool]]:
    """Create or update plans by name (CLI `gateway seed-plans`); (plan, created) each.

    Fields not given keep their value, so a provider price id set by hand survives a re-seed.
    Does not commit.
    """
    done: list[tuple[Plan, bool]] = []
    for raw in specs:
        spec = _validated_plan_spec(dict(raw))
        plan = (
            await session.execute(select(Plan).where(col(Plan.name) == spec["name"]))
        ).scalar_one_or_none()
        created = plan is None
        if plan is None:
            plan = Plan(**spec)
        else:
            for key, value in spec.items():
                setattr(plan, key, value)
        session.add(plan)
        await session.flush()
        done.append((plan, created))
    return done
