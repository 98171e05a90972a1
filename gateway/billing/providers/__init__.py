"""Payment providers behind one small interface; chosen by GATEWAY_PAYMENTS_PROVIDER.

A provider only talks to the payment network. It never touches the database: what it reports
comes back as a `PaymentEvent` (or `SetupEvent`), which `gateway.billing.payments` applies the
same way whether it came from a direct call's answer or from a webhook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from gateway.db.models import Payment
from gateway.settings import Settings

Outcome = Literal["succeeded", "failed", "canceled", "pending"]


class ProviderError(Exception):
    """The provider could not be reached or refused the request (not a card decline)."""


@dataclass(frozen=True)
class PaymentEvent:
    """What the provider says happened to one payment (a PaymentIntent on Stripe)."""

    provider_payment_id: str
    outcome: Outcome
    # Our payment id, sent to the provider as metadata and echoed back.
    payment_id: str | None = None
    amount_received_cents: int | None = None
    failure_reason: str | None = None


@dataclass(frozen=True)
class RefundEvent:
    """Money given back on one payment: one refund, named by the provider's refund id."""

    provider_payment_id: str
    refund_id: str
    amount_cents: int


@dataclass(frozen=True)
class SetupEvent:
    """A payment method saved for a customer (a succeeded SetupIntent on Stripe)."""

    customer_id: str
    payment_method_id: str


@dataclass(frozen=True)
class CheckoutRequest:
    """What a checkout asks the provider for; a `success_url` asks for a hosted page."""

    customer_id: str
    payment_id: str
    amount_cents: int
    currency: str
    success_url: str | None
    cancel_url: str | None


@dataclass(frozen=True)
class Checkout:
    # None for a hosted checkout page, whose PaymentIntent exists only once the customer pays.
    provider_payment_id: str | None
    client_secret: str | None
    checkout_url: str | None
    # Set when the provider settles at once (the sandbox); Stripe answers later by webhook.
    event: PaymentEvent | None = None


@dataclass(frozen=True)
class SetupSession:
    setup_intent_id: str
    client_secret: str
    url: str | None
    event: SetupEvent | None = None


@dataclass(frozen=True)
class CardDetails:
    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class ProviderPayment:
    """The provider's view of a payment: never raw card data or secrets."""

    provider: str
    provider_payment_id: str
    status: str
    amount_received_cents: int
    currency: str
    card_brand: str | None = None
    card_last4: str | None = None
    receipt_url: str | None = None


class PaymentProvider(Protocol):
    name: str

    async def create_customer(self, *, account_id: str, email: str | None) -> str:
        """A new customer for a billing account; returns its provider id."""
        ...

    async def start_checkout(self, request: CheckoutRequest) -> Checkout: ...

    async def charge_off_session(
        self, *, payment: Payment, customer_id: str, payment_method_id: str
    ) -> PaymentEvent:
        """Charge a saved payment method the payment's amount now; a decline is a `failed`
        event, not an error."""
        ...

    async def start_setup(self, *, customer_id: str, return_url: str | None) -> SetupSession: ...

    async def set_default_payment_method(
        self, *, customer_id: str, payment_method_id: str
    ) -> None: ...

    async def card_details(self, payment_method_id: str) -> CardDetails | None: ...

    async def retrieve_payment(self, payment: Payment) -> ProviderPayment:
        """The provider's record of one of our payments (it has `provider_payment_id`)."""
        ...

    async def refund(self, *, payment: Payment, amount_cents: int) -> RefundEvent:
        """Give `amount_cents` of a succeeded payment back to the card (an operator's refund)."""
        ...

    async def refunds_of_charge(self, charge_id: str) -> list[RefundEvent]:
        """A charge's succeeded refunds, for a `charge.refunded` event that does not list them."""
        ...

    async def close(self) -> None: ...


def build_payment_provider(settings: Settings) -> PaymentProvider:
    """The configured provider (settings already refuse the sandbox in production)."""
    if settings.payments_provider == "stripe":
        from gateway.billing.providers.stripe import StripeProvider

        return StripeProvider(settings)
    from gateway.billing.providers.sandbox import SandboxProvider

    return SandboxProvider()
