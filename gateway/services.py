"""Process-wide collaborators handed to resolvers on the Context (payment providers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.billing.providers import PaymentProvider
    from gateway.billing.subscriptions import SubscriptionProvider


@dataclass
class Services:
    payments: PaymentProvider | None = None
    subscriptions: SubscriptionProvider | None = None

    async def close(self) -> None:
        for provider in (self.payments, self.subscriptions):
            close = getattr(provider, "close", None)
            if close is not None:
                await close()


def build_services(settings: Settings) -> Services:
    from gateway.billing.providers import build_payment_provider
    from gateway.billing.subscriptions import build_subscription_provider

    return Services(
        payments=build_payment_provider(settings),
        subscriptions=build_subscription_provider(settings),
    )
