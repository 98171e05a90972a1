"""REST handlers for balances, payments, credits, payment methods, auto top-up, promotions."""

from __future__ import annotations

from gateway.errors import NotImplementedYet
from gateway.rest.framework import Call


async def get_user_balance(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def list_payments(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def get_provider_payment(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def get_payment(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def get_payment_status(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def start_checkout(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def purchase_credits(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def get_auto_top_up(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def put_auto_top_up(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def get_default_payment_method(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def start_payment_method_setup(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def list_promotions(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def get_organization_balance(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")
