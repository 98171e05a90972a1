"""REST handlers for usage history, aggregates, metrics and ingestion."""

from __future__ import annotations

from gateway.errors import NotImplementedYet
from gateway.rest.framework import Call


async def list_user_usages(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def get_organization_metrics(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def list_member_usages(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def get_organization_usage(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")


async def record_usages(call: Call) -> None:
    raise NotImplementedYet("This route is not available yet")
