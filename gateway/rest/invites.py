"""REST handlers for invites."""

from __future__ import annotations

from gateway.errors import NotImplementedYet
from gateway.rest.framework import Call


async def list_invites(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def send_invites(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def count_invites(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def revoke_invite(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def accept_invite(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")
