"""Seat-based subscriptions behind one small interface: `sandbox` (local periods) and `stripe`.

A provider turns a request (subscribe, change seats or plan, cancel at period end, resume) into
the provider's view of the subscription, a `SubscriptionState`. `apply_state` writes that view
onto our row and records plan history from what changed, so the API path and Stripe's
`customer.subscription.*` events (`stripe_subscriptions.apply_subscription_event`) go through
the same code and never record a change twice. Stripe ends periods itself and says so by
webhook; the sandbox's periods end in `settle_sandbox_periods`, run before any write.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.models import (
    Account,
    Plan,
    PlanHistory,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.services import Services

PLAN_TYPES = ("individual", "teams")
# Plan.interval holds the wire value; months per period and Stripe's name for it.
INTERVAL_MONTHS = {"Monthly": 1, "Yearly": 12}
STRIPE_INTERVALS = {"Monthly": "month", "Yearly": "year"}

SUBSCRIBED = "subscribed"
SEATS_CHANGED = "seats_changed"
CANCELED = "canceled"
RENEWED = "renewed"
# Stored and shown in GraphQL; REST's history (CONTRACT.md's closed list) shows it as SUBSCRIBED.
PLAN_CHANGED = "plan_changed"
# How many ended periods one settling catches up at most (a sandbox left alone for years).
MAX_PERIODS_SETTLED = 1_000


def add_months(value: datetime, months: int) -> datetime:
    """Same day-of-month `months` later, clamped to the month's last day (Jan 31 → Feb 28)."""
    index = value.month - 1 + months
    year, month = value.year + index // 12, index % 12 + 1
    day = min(value.day, calendar.monthrange(year, month)[1])
    return value.replace(year=year, month=month, day=day)


def period_end(plan: Plan, start: datetime) -> datetime:
    return add_months(start, INTERVAL_MONTHS.get(plan.interval, 1))


def is_upgrade(current: Plan, target: Plan) -> bool:
    """Whether moving to `target` is an upgrade (applied at once): it costs more per seat per
    month (the price over the interval's months, compared without rounding). Anything else,
    an equal price included, is a downgrade, applied at the end of the period."""
    current_months = INTERVAL_MONTHS.get(current.interval, 1)
    target_months = INTERVAL_MONTHS.get(target.interval, 1)
    return (
        target.price_per_seat_cents * current_months > current.price_per_seat_cents * target_months
    )


@dataclass(frozen=True)
class NewSubscription:
    """What subscribing asks a provider for; `customer_id` is the account's customer there."""

    account: Account
    customer_id: str | None
    plan: Plan
    seats: int
    subscription_id: str


@dataclass(frozen=True)
class SubscriptionState:
    """The provider's view of one subscription, in our vocabulary."""

    status: str
    seats: int
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at: datetime | None = None
    canceled_at: datetime | None = None
    provider_subscription_id: str | None = None
    # The provider's plan/price id, to follow a plan change made on the provider's side.
    provider_plan_id: str | None = None
    # Set when the first payment needs the customer to confirm it (3-D Secure, no card yet).
    client_secret: str | None = None


class SubscriptionProvider(Protocol):
    name: str

    async def create(self, request: NewSubscription) -> SubscriptionState:
        """Start a subscription at this provider."""
        ...

    async def change_seats(
        self, *, subscription: Subscription, plan: Plan, seats: int
    ) -> SubscriptionState: ...

    async def change_plan(
        self, *, subscription: Subscription, plan: Plan, seats: int
    ) -> SubscriptionState:
        """Move to `plan` now (the provider prorates); a pending cancellation is withdrawn."""
        ...

    async def cancel_at_period_end(self, *, subscription: Subscription) -> SubscriptionState: ...

    async def resume(self, *, subscription: Subscription) -> SubscriptionState:
        """Withdraw a cancellation at period end that has not taken effect."""
        ...

    async def close(self) -> None: ...


def _state_of(subscription: Subscription) -> SubscriptionState:
    return SubscriptionState(
        status=subscription.status,
        seats=subscription.seats,
        current_period_start=subscription.current_period_start,
        current_period_end=subscription.current_period_end,
        cancel_at=subscription.cancel_at,
        canceled_at=subscription.canceled_at,
        provider_subscription_id=subscription.provider_subscription_id,
    )


class SandboxSubscriptions:
    """Local subscriptions for development and tests: active at once, periods from the plan."""

    name = "sandbox"

    async def create(self, request: NewSubscription) -> SubscriptionState:
        now = utcnow()
        return SubscriptionState(
            status=SubscriptionStatus.ACTIVE.value,
            seats=request.seats,
            current_period_start=now,
            current_period_end=period_end(request.plan, now),
        )

    async def change_seats(
        self, *, subscription: Subscription, plan: Plan, seats: int
    ) -> SubscriptionState:
        return replace(_state_of(subscription), seats=seats)

    async def change_plan(
        self, *, subscription: Subscription, plan: Plan, seats: int
    ) -> SubscriptionState:
        # The sandbox charges nothing, so there is nothing to prorate: the period stays.
        return replace(_state_of(subscription), seats=seats, cancel_at=None, canceled_at=None)

    async def cancel_at_period_end(self, *, subscription: Subscription) -> SubscriptionState:
        now = utcnow()
        return replace(
            _state_of(subscription),
            cancel_at=subscription.current_period_end or now,
            canceled_at=now,
        )

    async def resume(self, *, subscription: Subscription) -> SubscriptionState:
        return replace(_state_of(subscription), cancel_at=None, canceled_at=None)

    async def close(self) -> None:
        return None


_PROVIDERS: dict[tuple[str, str, str | None], SubscriptionProvider] = {}


def build_subscription_provider(settings: Settings) -> SubscriptionProvider:
    """A new provider for the configured GATEWAY_PAYMENTS_PROVIDER (the caller closes it)."""
    if settings.payments_provider == "stripe":
        from gateway.billing.stripe_subscriptions import StripeSubscriptions

        assert settings.stripe_api_key is not None  # Settings refuses stripe without a key
        return StripeSubscriptions(
            settings.stripe_api_key.get_secret_value(), settings.stripe_api_base
        )
    return SandboxSubscriptions()


def subscription_provider(
    settings: Settings, services: Services | None = None
) -> SubscriptionProvider:
    """The process's provider: `services.subscriptions` when wired, else one per configuration."""
    wired = services.subscriptions if services is not None else None
    if wired is not None:
        return wired
    api_key = settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else ""
    key = (settings.payments_provider, api_key, settings.stripe_api_base)
    if key not in _PROVIDERS:
        _PROVIDERS[key] = build_subscription_provider(settings)
    return _PROVIDERS[key]


def _seconds(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def _history(subscription: Subscription, action: str) -> PlanHistory:
    return PlanHistory(
        subscription_id=subscription.id,
        account_id=subscription.account_id,
        plan_id=subscription.plan_id,
        seats=subscription.seats,
        action=action,
    )


async def apply_state(
    session: AsyncSession,
    subscription: Subscription,
    state: SubscriptionState,
    *,
    plan_id: str | None = None,
) -> list[PlanHistory]:
    """Write the provider's view onto our row; record history for what changed (nothing twice).

    Stale or replayed views change nothing: a canceled subscription stays canceled, a period
    never moves backwards, and an `incomplete` view never undoes a started subscription.
    Adds to the session; the caller commits.
    """
    row = subscription
    if row.status == SubscriptionStatus.CANCELED.value:
        return []
    # Stripe counts whole seconds; our own periods carry microseconds.
    incoming = _seconds(state.current_period_start)
    stored = _seconds(row.current_period_start)
    if incoming is not None and stored is not None and incoming < stored:
        return []
    actions: list[str] = []
    if plan_id is not None and plan_id != row.plan_id:
        row.plan_id = plan_id
        # A downgrade was relative to the plan being left: whatever moved the plan ends it.
        row.pending_plan_id = None
        actions.append(PLAN_CHANGED)
    if incoming is not None and incoming != stored:
        if stored is not None:
            actions.append(RENEWED)
        row.current_period_start = state.current_period_start
    end = state.current_period_end
    if end is not None and _seconds(end) != _seconds(row.current_period_end):
        row.current_period_end = end
    if state.seats != row.seats:
        row.seats = state.seats
        actions.append(SEATS_CHANGED)
    cancel_at = state.cancel_at
    if cancel_at is not None and _seconds(cancel_at) == _seconds(row.current_period_end):
        cancel_at = row.current_period_end  # "at period end", whatever the precision
    ends_now = state.status == SubscriptionStatus.CANCELED.value
    if row.cancel_at is None and (cancel_at is not None or ends_now):
        actions.append(CANCELED)
    row.cancel_at = cancel_at if not ends_now else (cancel_at or row.cancel_at)
    row.canceled_at = state.canceled_at if cancel_at or ends_now else None
    if not (
        state.status == SubscriptionStatus.INCOMPLETE.value
        and row.status != SubscriptionStatus.INCOMPLETE.value
    ):
        row.status = state.status
    if state.provider_subscription_id and not row.provider_subscription_id:
        row.provider_subscription_id = state.provider_subscription_id
    row.updated_at = utcnow()
    session.add(row)
    entries = [_history(row, action) for action in dict.fromkeys(actions)]
    session.add_all(entries)
    return entries


async def settle_sandbox_periods(session: AsyncSession, row: Subscription, now: datetime) -> None:
    """End the sandbox subscription's periods that are over, as Stripe would: a cancellation at
    period end takes effect (the subscription is canceled), else the period renews, into the
    pending plan when a downgrade waits. Deterministic in `now`; adds to the session."""
    for _ in range(MAX_PERIODS_SETTLED):
        end = row.current_period_end
        if row.status == SubscriptionStatus.CANCELED.value or end is None or end > now:
            return
        if row.cancel_at is not None and row.cancel_at <= end:
            await apply_state(
                session, row, replace(_state_of(row), status=SubscriptionStatus.CANCELED.value)
            )
            return
        plan = await session.get_one(Plan, row.pending_plan_id or row.plan_id)
        renewed = replace(
            _state_of(row), current_period_start=end, current_period_end=period_end(plan, end)
        )
        await apply_state(session, row, renewed, plan_id=plan.id)
