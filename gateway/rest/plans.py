"""REST handlers for the plan catalog and subscriptions."""

from __future__ import annotations

from gateway.errors import NotImplementedYet
from gateway.rest.framework import Call


async def get_user_plan(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def list_plans(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def get_organization_plan(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def get_plan_history(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def get_plan_details(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def subscribe(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def change_seats(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def cancel_plan(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")
