"""Moving a subscription: to another plan, back from a pending cancellation, and seats that hold.

An upgrade (a plan that costs more per seat per month: `subscriptions.is_upgrade`) takes effect
at once, prorated by the provider; a downgrade waits for the end of the period as the
subscription's `pending_plan_id` (Stripe's renewal webhook or the sandbox's settling applies
it). Every write here runs under `plans.locked_current`, the account row's lock, which a member
joining takes too, so seats are decided one writer at a time on both databases.
"""

from __future__ import annotations

from gateway.billing.providers import ProviderError
from gateway.billing.subscriptions import apply_state, is_upgrade
from gateway.db.models import Account, Plan, Subscription
from gateway.errors import Conflict, SeatsExhausted, Unprocessable
from resolvers import accounts
from resolvers.context import Context
from resolvers.payments import ProviderUnavailable
from resolvers.permissions import OrgAccess
from resolvers.plans import (
    check_members_fit,
    check_seats,
    current_subscription,
    locked_current,
    member_count_now,
    not_subscribed,
    offered_plan,
    organization_of,
    plan_or_404,
    provider,
)

ALREADY_ON_PLAN = "Already on this plan"
NOTHING_TO_RESUME = "Nothing to resume: no cancellation or plan change is pending"
NO_SEATS_LEFT = "No seats left: ask an owner to add seats"


async def _locked(ctx: Context, account: Account) -> Subscription:
    if await current_subscription(ctx, account) is None:
        raise not_subscribed(account)
    subscription = await locked_current(ctx, account.id)
    if subscription is None:
        raise not_subscribed(account)
    return subscription


async def change_plan(
    ctx: Context, *, organization_id: str | None, plan_id: str, seats: int | None = None
) -> Subscription:
    """Move the organization's (owner/admin), or with no organization the caller's, plan.

    Seats are kept unless given (given ones apply at once, even with a downgrade). Choosing a
    plan withdraws a pending cancellation; a later choice replaces a pending downgrade.
    """
    account = await accounts.billing_account(ctx, organization_id=organization_id)
    if seats is not None:
        check_seats(seats)
    plan = await offered_plan(ctx, account, plan_id)
    subscription = await _locked(ctx, account)
    if subscription.plan_id == plan.id:
        raise Conflict(ALREADY_ON_PLAN)
    seats = subscription.seats if seats is None else seats
    await check_members_fit(ctx, account, seats)
    current = await plan_or_404(ctx, subscription.plan_id)
    chosen = provider(ctx)
    if chosen.name == "stripe" and not plan.provider_price_id:
        # Checked now, not when the downgrade falls due at a renewal nobody watches.
        raise Unprocessable("This plan cannot be purchased yet", field="planId")
    session = ctx.session
    try:
        if is_upgrade(current, plan):
            state = await chosen.change_plan(subscription=subscription, plan=plan, seats=seats)
            await apply_state(session, subscription, state, plan_id=plan.id)
        else:
            await _keep_until_period_end(ctx, subscription, current, seats)
            subscription.pending_plan_id = plan.id
            session.add(subscription)
    except ProviderError as exc:
        raise ProviderUnavailable(f"The payment provider refused the request: {exc}") from exc
    await session.commit()
    return subscription


async def _keep_until_period_end(
    ctx: Context, subscription: Subscription, plan: Plan, seats: int
) -> None:
    """Before a downgrade: the current plan continues to the period's end (a pending
    cancellation is withdrawn) with the seats asked for."""
    chosen, session = provider(ctx), ctx.session
    if subscription.cancel_at is not None:
        await apply_state(session, subscription, await chosen.resume(subscription=subscription))
    if seats != subscription.seats:
        state = await chosen.change_seats(subscription=subscription, plan=plan, seats=seats)
        await apply_state(session, subscription, state)


async def resume_subscription(ctx: Context, *, organization_id: str | None) -> Subscription:
    """Undo what waits for the period's end (owner/admin, or the caller's own plan): a
    cancellation that has not taken effect, and a pending downgrade. 409 when neither is."""
    account = await accounts.billing_account(ctx, organization_id=organization_id)
    subscription = await _locked(ctx, account)
    if subscription.cancel_at is None and subscription.pending_plan_id is None:
        raise Conflict(NOTHING_TO_RESUME)
    session = ctx.session
    if subscription.cancel_at is not None:
        try:
            state = await provider(ctx).resume(subscription=subscription)
        except ProviderError as exc:
            raise ProviderUnavailable(f"The payment provider refused the request: {exc}") from exc
        await apply_state(session, subscription, state)
    subscription.pending_plan_id = None
    session.add(subscription)
    await session.commit()
    return subscription


async def hold_seat(ctx: Context, organization_id: str) -> None:
    """Before someone joins the organization: refuse (409 `SEATS_EXHAUSTED`) when it is on a
    plan and every seat is taken. Takes the account's lock until the caller commits, so two
    people racing for the last seat are decided one after the other."""
    account: Account | None = await ctx.loaders.account_by_organization_id.load(organization_id)
    if account is None:
        return
    subscription = await locked_current(ctx, account.id)
    if subscription is None:
        return
    if await member_count_now(ctx.session, organization_id) >= subscription.seats:
        raise SeatsExhausted(NO_SEATS_LEFT)


async def seats_available(ctx: Context, subscription: Subscription) -> int | None:
    """Seats of an organization's subscription not taken by a member (never below 0); None
    for a personal one."""
    organization_id = await organization_of(ctx, subscription)
    if organization_id is None:
        return None
    members = await ctx.loaders.member_count_by_organization_id.load(organization_id)
    return max(0, subscription.seats - int(members))


async def organization_seats_available(access: OrgAccess) -> int | None:
    """The organization's free seats, or None without a plan (no limit)."""
    subscription = await current_subscription(
        access.ctx, await accounts.organization_account(access)
    )
    return None if subscription is None else await seats_available(access.ctx, subscription)
