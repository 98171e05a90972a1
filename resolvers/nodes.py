"""`node(id:)`: dispatch a prefixed id to the resolver that decides whether the caller sees it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway.db.models import Member
from gateway.ids import prefix_of
from resolvers import (
    api_keys,
    invites,
    organizations,
    payments,
    permissions,
    plans,
    usage,
    users,
)
from resolvers.context import Context


async def _member(ctx: Context, member_id: str) -> Member | None:
    member: Member | None = await ctx.loaders.member_row_by_id.load(member_id)
    if (
        member is None
        or await permissions.organization_membership(ctx, member.organization_id) is None
    ):
        return None
    return member


# Each fetcher returns its domain's model, or None; `schema` converts by prefix.
FETCHERS: dict[str, Callable[[Context, str], Awaitable[object]]] = {
    "usr": users.get_user,
    "org": organizations.get_organization,
    "mbr": _member,
    "usg": usage.get_usage,
    "inv": invites.get_invite,
    "key": api_keys.get_api_key,
    "pay": payments.visible_payment,
    "pln": plans.get_plan,
    "sub": plans.visible_subscription,
}


async def node(ctx: Context, node_id: str) -> tuple[str, object] | None:
    """(prefix, model) for an id the caller may see; None for anything else."""
    ctx.user_id  # noqa: B018  (anonymous callers get UNAUTHENTICATED, not null)
    prefix = prefix_of(node_id)
    fetch = FETCHERS.get(prefix or "")
    if fetch is None:
        return None
    found = await fetch(ctx, node_id)
    return (prefix, found) if found is not None and prefix is not None else None
