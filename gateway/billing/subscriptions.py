"""Seat-based subscriptions behind one small interface: `sandbox` (local periods) and `stripe`.

A provider turns a request (subscribe, change seats, cancel at period end) into the provider's
view of the subscription, a `SubscriptionState`. `apply_state` writes that view onto our row and
records plan history from what changed, so the API path and Stripe's `customer.subscription.*`
events (`apply_subscription_event`) go through the same code and never record a change twice.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import stripe
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from stripe.params import SubscriptionCreateParams, SubscriptionUpdateParamsItem

from gateway.billing.providers import ProviderError
from gateway.billing.providers.stripe import StripeJSON
from gateway.db.models import (
    Account,
    Plan,
    PlanHistory,
    Subscription,
    SubscriptionStatus,
    utcnow,
)
from gateway.errors import Unprocessable
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.services import Services

log = logging.getLogger("gateway.billing.subscriptions")

PLAN_TYPES = ("individual", "teams")
# Plan.interval holds the wire value; months per period and Stripe's name for it.
INTERVAL_MONTHS = {"Monthly": 1, "Yearly": 12}
STRIPE_INTERVALS = {"Monthly": "month", "Yearly": "year"}

SUBSCRIBED = "subscribed"
SEATS_CHANGED = "seats_changed"
CANCELED = "canceled"
RENEWED = "renewed"

_STRIPE_STATUS = {
    "active": SubscriptionStatus.ACTIVE.value,
    "trialing": SubscriptionStatus.ACTIVE.value,
    "past_due": SubscriptionStatus.PAST_DUE.value,
    "unpaid": SubscriptionStatus.PAST_DUE.value,
    "paused": SubscriptionStatus.PAST_DUE.value,
    "canceled": SubscriptionStatus.CANCELED.value,
    "incomplete_expired": SubscriptionStatus.CANCELED.value,
    "incomplete": SubscriptionStatus.INCOMPLETE.value,
}


def add_months(value: datetime, months: int) -> datetime:
    """Same day-of-month `months` later, clamped to the month's last day (Jan 31 → Feb 28)."""
    index = value.month - 1 + months
    year, month = value.year + index // 12, index % 12 + 1
    day = min(value.day, calendar.monthrange(year, month)[1])
    return value.replace(year=year, month=month, day=day)


def period_end(plan: Plan, start: datetime) -> datetime:
    return add_months(start, INTERVAL_MONTHS.get(plan.interval, 1))


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

    async def cancel_at_period_end(self, *, subscription: Subscription) -> SubscriptionState: ...

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

    async def cancel_at_period_end(self, *, subscription: Subscription) -> SubscriptionState:
        now = utcnow()
        return replace(
            _state_of(subscription),
            cancel_at=subscription.current_period_end or now,
            canceled_at=now,
        )

    async def close(self) -> None:
        return None


def _provider_refused(exc: stripe.StripeError) -> Exception:
    """A card decline or refusal is 422 for the caller; an outage is a ProviderError."""
    log.warning("stripe refused a subscription request: %r", exc)
    if isinstance(exc, stripe.APIConnectionError) or (exc.http_status or 0) >= 500:
        return ProviderError(str(exc.user_message or exc))
    if isinstance(exc, stripe.CardError):
        return Unprocessable(exc.user_message or "The card was declined")
    detail = f": {exc.user_message}" if exc.user_message else ""
    return Unprocessable(f"The payment provider refused the subscription{detail}")


class StripeSubscriptions:
    """Stripe Subscriptions with quantity = seats, created from the plan's provider id used as
    a Stripe Plan id (Plans work on Stripe and on localstripe, which has no Prices)."""

    name = "stripe"

    def __init__(self, api_key: str, api_base: str | None = None) -> None:
        self._http = stripe.HTTPXClient()
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=self._http,
        )

    async def close(self) -> None:
        await self._http.close_async()

    async def ensure_plan(self, plan: Plan) -> str:
        """The Stripe Plan for one of ours (created with a Product when missing); its id."""
        plan_id = plan.provider_price_id or f"gw_{plan.name}"
        try:
            await self.client.v1.plans.retrieve_async(plan_id)
            return plan_id
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 404:
                raise
        product = await self.client.v1.products.create_async(
            params={"name": plan.display_name, "metadata": {"plan_id": plan.id}}
        )
        await self.client.v1.plans.create_async(
            params={
                "id": plan_id,
                "product": product.id,
                "amount": plan.price_per_seat_cents,
                "currency": "usd",
                "interval": STRIPE_INTERVALS.get(plan.interval, "month"),
                "metadata": {"plan_id": plan.id},
            }
        )
        return plan_id

    async def create(self, request: NewSubscription) -> SubscriptionState:
        plan, customer_id = request.plan, request.customer_id
        if not plan.provider_price_id:
            raise Unprocessable("This plan cannot be purchased yet")
        if not customer_id:
            raise Unprocessable("The account has no customer at the payment provider")
        try:
            params: SubscriptionCreateParams = {
                "customer": customer_id,
                "items": [{"plan": plan.provider_price_id, "quantity": request.seats}],
                "metadata": {
                    "subscription_id": request.subscription_id,
                    "account_id": request.account.id,
                    "plan_id": plan.id,
                },
            }
            created = await self.client.v1.subscriptions.create_async(
                params=params,
                options={"idempotency_key": f"subscribe-{request.subscription_id}"},
            )
            state = state_from_stripe(created.to_dict())
            if state.status == SubscriptionStatus.INCOMPLETE.value:
                state = replace(state, client_secret=await self._client_secret(created))
            return state
        except stripe.StripeError as exc:
            raise _provider_refused(exc) from exc

    async def _client_secret(self, created: stripe.Subscription) -> str | None:
        """The secret the customer confirms the first payment with (None if none is pending)."""
        invoice_id = created.to_dict().get("latest_invoice")
        if not isinstance(invoice_id, str):
            return None
        try:
            invoice = (
                await self.client.v1.invoices.retrieve_async(
                    invoice_id, params={"expand": ["confirmation_secret", "payment_intent"]}
                )
            ).to_dict()
        except stripe.StripeError:
            return None
        for key in ("confirmation_secret", "payment_intent"):
            found = invoice.get(key)
            if isinstance(found, Mapping) and found.get("client_secret"):
                return str(found["client_secret"])
        return None

    async def retrieve(self, provider_subscription_id: str) -> StripeJSON:
        """Stripe's current view (for a webhook handler that prefers fresh state to the event's)."""
        found = await self.client.v1.subscriptions.retrieve_async(provider_subscription_id)
        return found.to_dict()

    async def change_seats(
        self, *, subscription: Subscription, plan: Plan, seats: int
    ) -> SubscriptionState:
        if not subscription.provider_subscription_id:
            raise Unprocessable("This subscription is not managed by the payment provider")
        try:
            current = await self.retrieve(subscription.provider_subscription_id)
            items = (current.get("items") or {}).get("data") or []
            item: SubscriptionUpdateParamsItem = {"quantity": seats}
            if items:
                item["id"] = items[0]["id"]
            elif plan.provider_price_id is not None:  # the SDK leaves out a None anyway
                item["plan"] = plan.provider_price_id
            updated = await self.client.v1.subscriptions.update_async(
                subscription.provider_subscription_id, params={"items": [item]}
            )
            return state_from_stripe(updated.to_dict())
        except stripe.StripeError as exc:
            raise _provider_refused(exc) from exc

    async def cancel_at_period_end(self, *, subscription: Subscription) -> SubscriptionState:
        if not subscription.provider_subscription_id:
            raise Unprocessable("This subscription is not managed by the payment provider")
        try:
            updated = await self.client.v1.subscriptions.update_async(
                subscription.provider_subscription_id, params={"cancel_at_period_end": True}
            )
        except stripe.StripeError as exc:
            raise _provider_refused(exc) from exc
        state = state_from_stripe(updated.to_dict())
        if state.canceled_at is None:  # Stripe sets it; localstripe does not
            state = replace(state, canceled_at=utcnow())
        return state


_PROVIDERS: dict[tuple[str, str, str | None], SubscriptionProvider] = {}


def build_subscription_provider(settings: Settings) -> SubscriptionProvider:
    """A new provider for the configured GATEWAY_PAYMENTS_PROVIDER (the caller closes it)."""
    if settings.payments_provider == "stripe":
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


def _timestamp(value: datetime | int | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromtimestamp(int(value), UTC)


def _seconds(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def state_from_stripe(obj: StripeJSON) -> SubscriptionState:
    """Map a Stripe subscription object (any API version, or localstripe's) to our state."""
    items = (obj.get("items") or {}).get("data") or []
    item: StripeJSON = items[0] if items else {}
    # Newer API versions keep the period on the item; older ones (and localstripe) on the root.
    start = _timestamp(obj.get("current_period_start") or item.get("current_period_start"))
    end = _timestamp(obj.get("current_period_end") or item.get("current_period_end"))
    plan = item.get("plan") or item.get("price") or obj.get("plan")
    plan_id = plan.get("id") if isinstance(plan, Mapping) else plan
    quantity = item.get("quantity") or obj.get("quantity") or 1
    status = _STRIPE_STATUS.get(str(obj.get("status")), SubscriptionStatus.INCOMPLETE.value)
    cancel_at = _timestamp(obj.get("cancel_at"))
    if cancel_at is None and obj.get("cancel_at_period_end"):
        cancel_at = end
    canceled_at = _timestamp(obj.get("canceled_at"))
    if canceled_at is None and status == SubscriptionStatus.CANCELED.value:
        canceled_at = _timestamp(obj.get("ended_at")) or utcnow()
    return SubscriptionState(
        status=status,
        seats=int(quantity),
        current_period_start=start,
        current_period_end=end,
        cancel_at=cancel_at,
        canceled_at=canceled_at,
        provider_subscription_id=obj.get("id"),
        provider_plan_id=str(plan_id) if plan_id else None,
    )


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
        actions.append(SUBSCRIBED)
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


async def apply_subscription_event(
    session: AsyncSession, stripe_subscription: stripe.StripeObject | StripeJSON
) -> Subscription | None:
    """Apply a Stripe subscription object (from a `customer.subscription.*` event) to our row.

    Finds the row by Stripe id, or by the `subscription_id` we put in its metadata (an event
    may arrive before our own write committed its Stripe id). Unknown subscriptions are
    ignored (None). Idempotent: replaying an event records nothing new. The caller commits.
    """
    obj: StripeJSON = (
        stripe_subscription.to_dict()
        if isinstance(stripe_subscription, stripe.StripeObject)
        else dict(stripe_subscription)
    )
    provider_id = obj.get("id")
    row: Subscription | None = None
    if provider_id:
        row = (
            await session.execute(
                select(Subscription).where(
                    col(Subscription.provider_subscription_id) == provider_id
                )
            )
        ).scalar_one_or_none()
    ours = (obj.get("metadata") or {}).get("subscription_id")
    if row is None and ours:
        row = await session.get(Subscription, ours)
        if row is not None and row.provider_subscription_id not in (None, provider_id):
            row = None
    if row is None:
        return None
    state = state_from_stripe(obj)
    plan_id = None
    if state.provider_plan_id:
        plan_id = (
            await session.execute(
                select(col(Plan.id)).where(col(Plan.provider_price_id) == state.provider_plan_id)
            )
        ).scalar_one_or_none()
    await apply_state(session, row, state, plan_id=plan_id)
    return row
