"""REST handlers for organizations and remote config."""

from __future__ import annotations

from gateway.errors import NotImplementedYet
from gateway.rest.framework import Call


async def get_user_remote_config(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def create_organization(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def get_organization(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def update_organization(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def delete_organization(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def get_remote_config(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")
