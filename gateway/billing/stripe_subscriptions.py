"""Seat-based subscriptions on Stripe: the `stripe` provider and Stripe's view applied to ours.

A Stripe Subscription has one item whose quantity is the seat count and whose Plan is ours (our
plan's `provider_price_id` is a Stripe Plan id: Plans work on Stripe and on localstripe, which
has no Prices). `customer.subscription.*` events come back through `apply_subscription_event`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

import stripe
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col
from stripe.params import (
    SubscriptionCreateParams,
    SubscriptionUpdateParams,
    SubscriptionUpdateParamsItem,
)

from gateway.billing.providers import ProviderError
from gateway.billing.providers.stripe import StripeJSON
from gateway.billing.subscriptions import (
    RENEWED,
    STRIPE_INTERVALS,
    NewSubscription,
    SubscriptionProvider,
    SubscriptionState,
    apply_state,
)
from gateway.db.models import Plan, Subscription, SubscriptionStatus, utcnow
from gateway.errors import Unprocessable

log = logging.getLogger("gateway.billing.subscriptions")

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

    def _managed(self, subscription: Subscription) -> str:
        if not subscription.provider_subscription_id:
            raise Unprocessable("This subscription is not managed by the payment provider")
        return subscription.provider_subscription_id

    async def _update(
        self, subscription: Subscription, params: SubscriptionUpdateParams
    ) -> StripeJSON:
        try:
            updated = await self.client.v1.subscriptions.update_async(
                self._managed(subscription), params=params
            )
        except stripe.StripeError as exc:
            raise _provider_refused(exc) from exc
        return updated.to_dict()

    async def _set_item(
        self, subscription: Subscription, plan: Plan, seats: int, *, move: bool
    ) -> SubscriptionState:
        """Update the one item's quantity and, when `move`, its plan (which also withdraws a
        pending cancellation). Stripe prorates by its default (`create_prorations`: the
        difference lands on the next invoice)."""
        try:
            current = await self.retrieve(self._managed(subscription))
        except stripe.StripeError as exc:
            raise _provider_refused(exc) from exc
        items = (current.get("items") or {}).get("data") or []
        item: SubscriptionUpdateParamsItem = {"quantity": seats}
        if items:
            item["id"] = items[0]["id"]
        if (move or not items) and plan.provider_price_id is not None:
            item["plan"] = plan.provider_price_id
        params: SubscriptionUpdateParams = {"items": [item]}
        if move:
            params["cancel_at_period_end"] = False
        return state_from_stripe(await self._update(subscription, params))

    async def change_seats(
        self, *, subscription: Subscription, plan: Plan, seats: int
    ) -> SubscriptionState:
        return await self._set_item(subscription, plan, seats, move=False)

    async def change_plan(
        self, *, subscription: Subscription, plan: Plan, seats: int
    ) -> SubscriptionState:
        if not plan.provider_price_id:
            raise Unprocessable("This plan cannot be purchased yet")
        return await self._set_item(subscription, plan, seats, move=True)

    async def cancel_at_period_end(self, *, subscription: Subscription) -> SubscriptionState:
        state = state_from_stripe(await self._update(subscription, {"cancel_at_period_end": True}))
        if state.canceled_at is None:  # Stripe sets it; localstripe does not
            state = replace(state, canceled_at=utcnow())
        return state

    async def resume(self, *, subscription: Subscription) -> SubscriptionState:
        return state_from_stripe(await self._update(subscription, {"cancel_at_period_end": False}))


def _timestamp(value: datetime | int | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromtimestamp(int(value), UTC)


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


async def apply_subscription_event(
    session: AsyncSession,
    stripe_subscription: stripe.StripeObject | StripeJSON,
    provider: SubscriptionProvider | None = None,
) -> Subscription | None:
    """Apply a Stripe subscription object (from a `customer.subscription.*` event) to our row.

    Finds the row by Stripe id, or by the `subscription_id` we put in its metadata (an event
    may arrive before our own write committed its Stripe id). Unknown subscriptions are
    ignored (None). Idempotent: replaying an event records nothing new. The caller commits.

    A renewal of a subscription with a pending downgrade moves the Stripe item to that plan
    (through `provider`): the new period's invoice was made at the old price, and Stripe's
    proration at the start of the period credits the difference back.
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
    entries = await apply_state(session, row, state, plan_id=plan_id)
    renewed = any(entry.action == RENEWED for entry in entries)
    if renewed and row.pending_plan_id is not None and provider is not None:
        pending = await session.get_one(Plan, row.pending_plan_id)
        moved = await provider.change_plan(subscription=row, plan=pending, seats=row.seats)
        await apply_state(session, row, moved, plan_id=pending.id)
    return row
