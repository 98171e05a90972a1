"""REST handlers for organization members and roles."""

from __future__ import annotations

from gateway.errors import NotImplementedYet
from gateway.rest.framework import Call


async def list_members(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def remove_members(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def available_roles(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def change_role(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")
