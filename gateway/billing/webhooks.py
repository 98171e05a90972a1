"""Provider webhooks: `/webhooks/stripe`, verified, stored by event id, applied once.

The event row and everything the event changes are committed in one transaction, so an event is
either fully applied and recorded, or neither (and Stripe's retry applies it). A replayed or
concurrently delivered event id finds its row and changes nothing. Handlers are registered per
event type with `@on("…")`; unknown types are stored and acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import stripe
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.billing.payments import apply_payment_event, apply_setup_event
from gateway.billing.providers import Outcome, PaymentEvent, PaymentProvider, SetupEvent
from gateway.billing.providers.stripe import (
    StripeJSON,
    payment_event_from_checkout_session,
    payment_event_from_intent,
    refund_event,
)
from gateway.billing.refunds import apply_refund
from gateway.billing.stripe_subscriptions import apply_subscription_event
from gateway.billing.subscriptions import SubscriptionProvider, subscription_provider
from gateway.db.models import WebhookEvent
from gateway.errors import ServiceBusy
from gateway.inputs import NUL_MESSAGE, nul_path
from gateway.jsoncodec import loads_exactly
from gateway.metrics import WEBHOOK_EVENTS
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.services import Services

log = logging.getLogger("gateway.webhooks")


class WebhookState(Protocol):
    """What the endpoint needs of the app's state (`gateway.app.AppState`)."""

    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    services: Services


@dataclass
class WebhookContext:
    session: AsyncSession
    provider: PaymentProvider | None
    settings: Settings
    event: StripeJSON
    subscriptions: SubscriptionProvider | None = None


Handler = Callable[[WebhookContext, StripeJSON], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}


def on(*event_types: str) -> Callable[[Handler], Handler]:
    """Register a handler for Stripe event types; it gets the event's `data.object`."""

    def register(handler: Handler) -> Handler:
        for event_type in event_types:
            HANDLERS[event_type] = handler
        return handler

    return register


def _with_outcome(event: PaymentEvent, outcome: Outcome) -> PaymentEvent:
    return PaymentEvent(
        provider_payment_id=event.provider_payment_id,
        outcome=outcome,
        payment_id=event.payment_id,
        amount_received_cents=event.amount_received_cents,
        failure_reason=event.failure_reason
        or ("The payment failed" if outcome == "failed" else None),
    )


@on("payment_intent.succeeded")
async def _intent_succeeded(ctx: WebhookContext, intent: StripeJSON) -> None:
    await apply_payment_event(
        ctx.session, _with_outcome(payment_event_from_intent(intent), "succeeded")
    )


@on("payment_intent.payment_failed")
async def _intent_failed(ctx: WebhookContext, intent: StripeJSON) -> None:
    await apply_payment_event(
        ctx.session, _with_outcome(payment_event_from_intent(intent), "failed")
    )


@on("payment_intent.canceled")
async def _intent_canceled(ctx: WebhookContext, intent: StripeJSON) -> None:
    await apply_payment_event(
        ctx.session, _with_outcome(payment_event_from_intent(intent), "canceled")
    )


@on(
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
)
async def _checkout_session(ctx: WebhookContext, session: StripeJSON) -> None:
    if session.get("mode") not in (None, "payment"):
        return  # subscription checkouts are followed through customer.subscription.* events
    payment_event = payment_event_from_checkout_session(session, str(ctx.event.get("type")))
    if payment_event.outcome != "pending":
        await apply_payment_event(ctx.session, payment_event)


@on("charge.refunded")
async def _charge_refunded(ctx: WebhookContext, charge: StripeJSON) -> None:
    """Each succeeded refund the charge lists; a charge that lists none (Stripe's API versions
    since 2022-11-15 leave `refunds` out) has them asked of the provider."""
    intent = charge.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    listed = charge.get("refunds")
    if isinstance(listed, dict) and isinstance(listed.get("data"), list):
        events = [refund_event(refund, intent) for refund in listed["data"]]
    elif ctx.provider is not None and ctx.provider.name == "stripe":
        events = list(await ctx.provider.refunds_of_charge(str(charge["id"])))
    else:
        log.warning("charge.refunded for %s lists no refunds and Stripe is not configured", intent)
        events = []
    for event in events:
        if event is not None:
            await apply_refund(ctx.session, event)


@on("refund.created", "refund.updated", "charge.refund.updated")
async def _refund(ctx: WebhookContext, refund: StripeJSON) -> None:
    event = refund_event(refund)
    if event is not None:
        await apply_refund(ctx.session, event)


@on("setup_intent.succeeded")
async def _setup_succeeded(ctx: WebhookContext, intent: StripeJSON) -> None:
    customer, method = intent.get("customer"), intent.get("payment_method")
    if isinstance(customer, dict):
        customer = customer.get("id")
    if isinstance(method, dict):
        method = method.get("id")
    if not customer or not method:
        return
    account = await apply_setup_event(
        ctx.session, SetupEvent(customer_id=str(customer), payment_method_id=str(method))
    )
    if account is not None and ctx.provider is not None and ctx.provider.name == "stripe":
        # Stripe's own default too, so invoices (subscriptions) charge the same card.
        await ctx.provider.set_default_payment_method(
            customer_id=str(customer), payment_method_id=str(method)
        )


@on(
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)
async def _subscription_changed(ctx: WebhookContext, subscription: StripeJSON) -> None:
    # The provider moves a renewed subscription to its pending downgrade at Stripe.
    provider = ctx.subscriptions or subscription_provider(ctx.settings)
    await apply_subscription_event(ctx.session, subscription, provider)


# The columns an event is recorded in (`WebhookEvent.id`, `.type`).
EVENT_ID_MAX = 255
EVENT_TYPE_MAX = 100


def _shape_problem(data: object) -> str | None:
    """What makes a (signed) body no Stripe event this endpoint can record, or None."""
    if not isinstance(data, dict):
        return "the body must be a JSON object"
    event_id, event_type, body = data.get("id"), data.get("type"), data.get("data")
    if not isinstance(event_id, str) or not isinstance(event_type, str):
        return "id and type are required strings"
    if not event_id or len(event_id) > EVENT_ID_MAX:
        return f"id must be 1 to {EVENT_ID_MAX} characters"
    if not event_type or len(event_type) > EVENT_TYPE_MAX:
        return f"type must be 1 to {EVENT_TYPE_MAX} characters"
    if not isinstance(body, dict) or not isinstance(body.get("object"), dict):
        return "data.object must be an object"
    where = nul_path(data)
    if where is not None:
        return f"{where} {NUL_MESSAGE}"
    return None


def _error(status: int, message: str) -> Response:
    return JSONResponse({"success": False, "error": message}, status_code=status)


async def stripe_webhook(state: WebhookState, request: Request) -> Response:
    """Verify, record once and apply a Stripe event; its outcome is counted for /metrics."""
    try:
        outcome, response = await _deliver(state, request)
    except ServiceBusy:
        WEBHOOK_EVENTS.labels("stripe", "unavailable").inc()
        raise
    except Exception:
        WEBHOOK_EVENTS.labels("stripe", "failed").inc()
        raise
    WEBHOOK_EVENTS.labels("stripe", outcome).inc()
    return response


async def _deliver(state: WebhookState, request: Request) -> tuple[str, Response]:
    """The delivery's outcome (`applied`, `ignored`: a type without a handler, `duplicate`,
    `invalid`, `bad_signature`, `failed`, `unconfigured`) and the answer to Stripe."""
    secret = state.settings.stripe_webhook_secret
    if secret is None:
        return "unconfigured", _error(503, "Stripe webhooks are not configured")
    payload = (await request.body()).decode("utf-8", errors="replace")
    try:
        stripe.WebhookSignature.verify_header(
            payload,
            request.headers.get("stripe-signature"),
            secret.get_secret_value(),
            stripe.Webhook.DEFAULT_TOLERANCE,
        )
    except stripe.SignatureVerificationError:
        return "bad_signature", _error(400, "Invalid Stripe signature")
    try:
        data = loads_exactly(payload)
    except ValueError:
        return "invalid", _error(400, "Invalid webhook payload")
    problem = _shape_problem(data)
    if problem is not None:
        # Signed, so Stripe's (or a leaked secret's): refused before anything is written.
        log.warning("stripe webhook refused: %s", problem)
        return "invalid", _error(400, f"Invalid webhook payload: {problem}")
    event_id, event_type = data["id"], data["type"]
    obj = data["data"]["object"]
    duplicate = JSONResponse({"received": True, "duplicate": True})
    async with state.session_factory() as session:
        try:
            async with session.begin_nested():
                session.add(WebhookEvent(id=event_id, provider="stripe", type=event_type))
                await session.flush()
        except IntegrityError:
            return "duplicate", duplicate
        handler = HANDLERS.get(event_type)
        if handler is not None:
            ctx = WebhookContext(
                session=session,
                provider=state.services.payments,
                settings=state.settings,
                event=data,
                subscriptions=state.services.subscriptions,
            )
            try:
                await handler(ctx, obj)
            except ServiceBusy:  # the database is away: 503 (gateway/app.py), Stripe retries
                raise
            except (KeyError, TypeError, ValueError) as error:
                # The object lacks what its event type needs: a retry would fail the same way.
                log.warning("stripe event %s (%s) is malformed: %r", event_id, event_type, error)
                await session.rollback()
                return "invalid", _error(
                    400, "Invalid webhook payload: the event's object is incomplete"
                )
            except Exception:
                # Not recorded: Stripe retries, and the retry applies it.
                log.exception("stripe event %s (%s) failed", event_id, event_type)
                await session.rollback()
                return "failed", _error(500, "The event could not be applied; retry later")
        try:
            await session.commit()
        except IntegrityError:
            # The same event delivered concurrently: the other delivery applied it.
            await session.rollback()
            return "duplicate", duplicate
    return ("applied" if handler is not None else "ignored"), JSONResponse({"received": True})
