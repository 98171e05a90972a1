"""Process-wide collaborators handed to resolvers on the Context (payment provider, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.settings import Settings


@dataclass
class Services:
    payments: Any = None

    async def close(self) -> None:
        close = getattr(self.payments, "close", None)
        if close is not None:
            await close()


def build_services(settings: Settings) -> Services:
    from gateway.billing.providers import build_payment_provider

    return Services(payments=build_payment_provider(settings))
