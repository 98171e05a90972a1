"""Payment providers behind one small interface; chosen by GATEWAY_PAYMENTS_PROVIDER."""

from __future__ import annotations

from typing import Any

from gateway.settings import Settings


def build_payment_provider(settings: Settings) -> Any:
    """The configured provider (filled in by the money issue)."""
    return None
