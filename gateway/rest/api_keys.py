"""REST handlers for API keys."""

from __future__ import annotations

from gateway.errors import NotImplementedYet
from gateway.rest.framework import Call


async def list_organization_api_keys(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def list_api_keys(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def create_api_key(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def delete_api_key(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")
