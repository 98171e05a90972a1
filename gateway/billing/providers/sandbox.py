"""The embedded sandbox provider: deterministic outcomes by amount, no network.

Amounts whose cents end in 02 are declined (like Stripe's 4000000000000002 card); everything else
succeeds. Checkouts and setups complete at once, and their outcome is reported as the same events
Stripe would send, so they take the same code path as webhooks.
"""

from __future__ import annotations

import secrets

from gateway.billing.providers import (
    CardDetails,
    Checkout,
    CheckoutRequest,
    PaymentEvent,
    ProviderPayment,
    RefundEvent,
    SetupEvent,
    SetupSession,
)
from gateway.db.models import Payment, PaymentStatus

SANDBOX_CARD = CardDetails(
    id="pm_sandbox_visa", brand="visa", last4="4242", exp_month=12, exp_year=2034
)
DECLINE_MESSAGE = "Your card was declined."


def declines(amount_cents: int) -> bool:
    return amount_cents % 100 == 2


class SandboxProvider:
    name = "sandbox"

    def _outcome(self, payment_id: str, amount_cents: int) -> PaymentEvent:
        provider_payment_id = f"sbx_pi_{payment_id}"
        if declines(amount_cents):
            return PaymentEvent(
                provider_payment_id=provider_payment_id,
                outcome="failed",
                payment_id=payment_id,
                amount_received_cents=0,
                failure_reason=DECLINE_MESSAGE,
            )
        return PaymentEvent(
            provider_payment_id=provider_payment_id,
            outcome="succeeded",
            payment_id=payment_id,
            amount_received_cents=amount_cents,
        )

    async def create_customer(self, *, account_id: str, email: str | None) -> str:
        return f"sbx_cus_{account_id}"

    async def start_checkout(self, request: CheckoutRequest) -> Checkout:
        event = self._outcome(request.payment_id, request.amount_cents)
        if success_url := request.success_url:
            # The "hosted page" settles at once and sends the customer straight back.
            back = (
                success_url if event.outcome == "succeeded" else (request.cancel_url or success_url)
            )
            return Checkout(
                provider_payment_id=event.provider_payment_id,
                client_secret=None,
                checkout_url=back,
                event=event,
            )
        return Checkout(
            provider_payment_id=event.provider_payment_id,
            client_secret=f"{event.provider_payment_id}_secret_{secrets.token_hex(8)}",
            checkout_url=None,
            event=event,
        )

    async def charge_off_session(
        self, *, payment: Payment, customer_id: str, payment_method_id: str
    ) -> PaymentEvent:
        return self._outcome(payment.id, payment.amount_cents)

    async def start_setup(self, *, customer_id: str, return_url: str | None) -> SetupSession:
        setup_id = f"sbx_seti_{secrets.token_hex(8)}"
        return SetupSession(
            setup_intent_id=setup_id,
            client_secret=f"{setup_id}_secret_{secrets.token_hex(8)}",
            url=None,
            event=SetupEvent(customer_id=customer_id, payment_method_id=SANDBOX_CARD.id),
        )

    async def set_default_payment_method(self, *, customer_id: str, payment_method_id: str) -> None:
        return None

    async def card_details(self, payment_method_id: str) -> CardDetails | None:
        return SANDBOX_CARD if payment_method_id == SANDBOX_CARD.id else None

    async def retrieve_payment(self, payment: Payment) -> ProviderPayment:
        succeeded = payment.status in (PaymentStatus.SUCCEEDED.value, PaymentStatus.REFUNDED.value)
        return ProviderPayment(
            provider=self.name,
            provider_payment_id=payment.provider_payment_id or f"sbx_pi_{payment.id}",
            status=payment.status,
            amount_received_cents=payment.amount_cents if succeeded else 0,
            currency=payment.currency,
            card_brand=SANDBOX_CARD.brand,
            card_last4=SANDBOX_CARD.last4,
            receipt_url=None,
        )

    async def refund(self, *, payment: Payment, amount_cents: int) -> RefundEvent:
        return RefundEvent(
            provider_payment_id=payment.provider_payment_id or f"sbx_pi_{payment.id}",
            refund_id=f"sbx_re_{secrets.token_hex(12)}",
            amount_cents=amount_cents,
        )

    async def refunds_of_charge(self, charge_id: str) -> list[RefundEvent]:
        return []  # the sandbox has no charges apart from its payments, and sends no events

    async def close(self) -> None:
        return None
