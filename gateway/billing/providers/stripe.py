"""The Stripe provider: customers per account, PaymentIntents, SetupIntents, off-session charges.

Uses the official SDK's `StripeClient` with its async HTTPX client; `GATEWAY_STRIPE_API_BASE`
points it at another server (localstripe in tests). Our own payment id travels as
`metadata.payment_id` and as the Stripe idempotency key, so a retried call never charges twice.
"""

from __future__ import annotations

from typing import Any, cast

import stripe
from stripe.params import (
    CustomerCreateParams,
    PaymentIntentCreateParams,
    SetupIntentCreateParams,
)
from stripe.params.checkout import SessionCreateParams

from gateway.billing.providers import (
    CardDetails,
    Checkout,
    CheckoutRequest,
    Outcome,
    PaymentEvent,
    ProviderError,
    ProviderPayment,
    RefundEvent,
    SetupSession,
)
from gateway.db.models import Payment
from gateway.settings import Settings

# PaymentIntent status → our outcome (anything needing the customer is a failure off-session).
_OUTCOMES: dict[str, Outcome] = {
    "succeeded": "succeeded",
    "processing": "pending",
    "requires_capture": "pending",
    "canceled": "canceled",
    "requires_payment_method": "failed",
    "requires_action": "failed",
    "requires_confirmation": "pending",
}


# Stripe's JSON (an API answer's `to_dict()`, a webhook's object): untyped, so its values are
# checked where they are read.
StripeJSON = dict[str, Any]


def _dict(obj: object) -> StripeJSON:
    """A Stripe object or JSON member as a plain dict ({} for anything else)."""
    if isinstance(obj, dict):
        return obj
    if isinstance(obj, stripe.StripeObject):
        return obj.to_dict()
    return {}


def payment_event_from_checkout_session(session: StripeJSON, event_type: str) -> PaymentEvent:
    """A Checkout Session event as our event: its PaymentIntent (once paid) names the payment."""
    outcome: Outcome = "pending"
    if event_type == "checkout.session.expired":
        outcome = "canceled"
    elif event_type == "checkout.session.async_payment_failed":
        outcome = "failed"
    elif session.get("payment_status") in ("paid", "no_payment_required"):
        outcome = "succeeded"
    intent = session.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    return PaymentEvent(
        provider_payment_id=str(intent or session["id"]),
        outcome=outcome,
        payment_id=_dict(session.get("metadata")).get("payment_id") or None,
        amount_received_cents=session.get("amount_total") if outcome == "succeeded" else 0,
        failure_reason="The payment failed" if outcome == "failed" else None,
    )


def payment_event_from_intent(intent: StripeJSON) -> PaymentEvent:
    """A PaymentIntent (from an API answer or a webhook) as our provider-neutral event."""
    status = str(intent.get("status") or "")
    outcome: Outcome = _OUTCOMES.get(status, "pending")
    error = _dict(intent.get("last_payment_error"))
    failure = error.get("message") if outcome == "failed" else None
    if outcome == "failed" and not failure:
        failure = (
            "The payment needs the customer's authentication"
            if status == "requires_action"
            else "The payment was declined"
        )
    received = intent.get("amount_received")
    if received is None and outcome == "succeeded":
        received = intent.get("amount")
    return PaymentEvent(
        provider_payment_id=str(intent["id"]),
        outcome=outcome,
        payment_id=(_dict(intent.get("metadata")).get("payment_id") or None),
        amount_received_cents=int(received) if received is not None else None,
        failure_reason=failure,
    )


def refund_event(refund: StripeJSON, payment_intent: str | None = None) -> RefundEvent | None:
    """A succeeded Refund object as our event; None for one pending, failed or not ours."""
    intent = refund.get("payment_intent") or payment_intent
    if isinstance(intent, dict):
        intent = intent.get("id")
    if refund.get("status") != "succeeded" or not intent:
        return None
    return RefundEvent(
        provider_payment_id=str(intent),
        refund_id=str(refund["id"]),
        amount_cents=int(refund["amount"]),
    )


class StripeProvider:
    name = "stripe"

    def __init__(self, settings: Settings) -> None:
        if settings.stripe_api_key is None:
            raise ValueError("the stripe provider needs GATEWAY_STRIPE_API_KEY")
        self._http = stripe.HTTPXClient(timeout=30)
        self.client = stripe.StripeClient(
            settings.stripe_api_key.get_secret_value(),
            base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else None,
            http_client=self._http,
            max_network_retries=2,
        )

    async def create_customer(self, *, account_id: str, email: str | None) -> str:
        params: CustomerCreateParams = {"metadata": {"account_id": account_id}}
        if email:
            params["email"] = email
        try:
            customer = await self.client.v1.customers.create_async(
                params, {"idempotency_key": f"customer:{account_id}"}
            )
        except stripe.StripeError as exc:
            raise ProviderError(str(exc.user_message or exc)) from exc
        return str(customer.id)

    async def start_checkout(self, request: CheckoutRequest) -> Checkout:
        if request.success_url:
            return await self._hosted_checkout(request, request.success_url)
        try:
            # cast: the SDK's params name this field `allowed_payment_method_types` (its newest
            # API version); we send the long-standing `payment_method_types`, which localstripe
            # and our API version take.
            params = cast(
                PaymentIntentCreateParams,
                {
                    "amount": request.amount_cents,
                    "currency": request.currency,
                    "customer": request.customer_id,
                    "payment_method_types": ["card"],
                    "metadata": {"payment_id": request.payment_id},
                },
            )
            intent = await self.client.v1.payment_intents.create_async(
                params, {"idempotency_key": f"checkout:{request.payment_id}"}
            )
        except stripe.StripeError as exc:
            raise ProviderError(str(exc.user_message or exc)) from exc
        return Checkout(
            provider_payment_id=str(intent.id),
            client_secret=intent.client_secret,
            checkout_url=None,
        )

    async def _hosted_checkout(self, request: CheckoutRequest, success_url: str) -> Checkout:
        """A Stripe-hosted Checkout Session: the frontend redirects to its URL.

        Stripe creates the PaymentIntent when the customer pays, so the payment learns its
        PaymentIntent id from the `checkout.session.*` events (found by `metadata.payment_id`).
        """
        payment_id = request.payment_id
        params: SessionCreateParams = {
            "mode": "payment",
            "customer": request.customer_id,
            "client_reference_id": payment_id,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.currency,
                        "unit_amount": request.amount_cents,
                        "product_data": {"name": "Credits"},
                    },
                }
            ],
            "success_url": success_url,
            "metadata": {"payment_id": payment_id},
            "payment_intent_data": {"metadata": {"payment_id": payment_id}},
        }
        if request.cancel_url:
            params["cancel_url"] = request.cancel_url
        try:
            session = await self.client.v1.checkout.sessions.create_async(
                params, {"idempotency_key": f"checkout-session:{payment_id}"}
            )
        except stripe.StripeError as exc:
            raise ProviderError(str(exc.user_message or exc)) from exc
        return Checkout(provider_payment_id=None, client_secret=None, checkout_url=session.url)

    async def charge_off_session(
        self, *, payment: Payment, customer_id: str, payment_method_id: str
    ) -> PaymentEvent:
        payment_id = payment.id
        try:
            intent = await self.client.v1.payment_intents.create_async(
                {
                    "amount": payment.amount_cents,
                    "currency": payment.currency,
                    "customer": customer_id,
                    "payment_method": payment_method_id,
                    "off_session": True,
                    "confirm": True,
                    "metadata": {"payment_id": payment_id},
                },
                {"idempotency_key": f"charge:{payment_id}"},
            )
        except stripe.CardError as exc:
            body = _dict(exc.json_body).get("error") or {}
            intent_id = _dict(body.get("payment_intent")).get("id") or f"declined:{payment_id}"
            return PaymentEvent(
                provider_payment_id=str(intent_id),
                outcome="failed",
                payment_id=payment_id,
                amount_received_cents=0,
                failure_reason=str(exc.user_message or "Your card was declined."),
            )
        except stripe.StripeError as exc:
            raise ProviderError(str(exc.user_message or exc)) from exc
        return payment_event_from_intent(intent.to_dict())

    async def start_setup(self, *, customer_id: str, return_url: str | None) -> SetupSession:
        try:
            # cast: `payment_method_types`, as for PaymentIntents in `start_checkout`.
            params = cast(
                SetupIntentCreateParams,
                {
                    "customer": customer_id,
                    "usage": "off_session",
                    "payment_method_types": ["card"],
                },
            )
            intent = await self.client.v1.setup_intents.create_async(params)
        except stripe.StripeError as exc:
            raise ProviderError(str(exc.user_message or exc)) from exc
        return SetupSession(
            setup_intent_id=str(intent.id), client_secret=str(intent.client_secret), url=None
        )

    async def set_default_payment_method(self, *, customer_id: str, payment_method_id: str) -> None:
        try:
            await self.client.v1.customers.update_async(
                customer_id, {"invoice_settings": {"default_payment_method": payment_method_id}}
            )
        except stripe.StripeError as exc:
            raise ProviderError(str(exc.user_message or exc)) from exc

    async def card_details(self, payment_method_id: str) -> CardDetails | None:
        try:
            method = await self.client.v1.payment_methods.retrieve_async(payment_method_id)
        except stripe.InvalidRequestError:
            return None
        except stripe.StripeError as exc:
            raise ProviderError(str(exc.user_message or exc)) from exc
        card = _dict(method.to_dict().get("card"))
        if not card:
            return None
        return CardDetails(
            id=str(method.id),
            brand=str(card.get("brand") or "unknown"),
            last4=str(card.get("last4") or ""),
            exp_month=int(card.get("exp_month") or 0),
            exp_year=int(card.get("exp_year") or 0),
        )

    async def retrieve_payment(self, payment: Payment) -> ProviderPayment:
        if not payment.provider_payment_id:
            raise ProviderError("This payment has no provider record yet")
        try:
            intent = (
                await self.client.v1.payment_intents.retrieve_async(
                    payment.provider_payment_id, {"expand": ["latest_charge"]}
                )
            ).to_dict()
        except stripe.StripeError as exc:
            raise ProviderError(str(exc.user_message or exc)) from exc
        charge = _dict(intent.get("latest_charge"))
        card = _dict(_dict(charge.get("payment_method_details")).get("card"))
        brand, last4 = card.get("brand"), card.get("last4")
        if not card and intent.get("payment_method"):
            details = await self.card_details(str(intent["payment_method"]))
            if details is not None:
                brand, last4 = details.brand, details.last4
        received = intent.get("amount_received")
        if received is None:
            received = intent.get("amount", 0) if intent.get("status") == "succeeded" else 0
        return ProviderPayment(
            provider=self.name,
            provider_payment_id=str(intent["id"]),
            status=str(intent.get("status") or ""),
            amount_received_cents=int(received or 0),
            currency=str(intent.get("currency") or payment.currency),
            card_brand=brand,
            card_last4=last4,
            receipt_url=charge.get("receipt_url"),
        )

    async def refund(self, *, payment: Payment, amount_cents: int) -> RefundEvent:
        if not payment.provider_payment_id:
            raise ProviderError("This payment has no provider record yet")
        try:
            refund = await self.client.v1.refunds.create_async(
                {"payment_intent": payment.provider_payment_id, "amount": amount_cents}
            )
        except stripe.StripeError as exc:
            raise ProviderError(str(exc.user_message or exc)) from exc
        return RefundEvent(
            provider_payment_id=payment.provider_payment_id,
            refund_id=str(refund.id),
            amount_cents=int(refund.amount),
        )

    async def refunds_of_charge(self, charge_id: str) -> list[RefundEvent]:
        try:
            charge = (await self.client.v1.charges.retrieve_async(charge_id)).to_dict()
            listed = await self.client.v1.refunds.list_async({"charge": charge_id, "limit": 100})
        except stripe.StripeError as exc:
            raise ProviderError(str(exc.user_message or exc)) from exc
        intent = charge.get("payment_intent")
        if isinstance(intent, dict):
            intent = intent.get("id")
        if not intent:
            return []
        return [
            event
            for refund in listed.data
            if (event := refund_event(refund.to_dict(), str(intent))) is not None
        ]

    async def close(self) -> None:
        await self._http.close_async()
