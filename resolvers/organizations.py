"""Organization operations: read, create, update, delete, remote config."""

from __future__ import annotations

from gateway.context import Context
from gateway.db.models import Member, Organization
from gateway.errors import NotFound
from resolvers import permissions
from resolvers.pagination import Page, PageArgs


async def get_organization(ctx: Context, organization_id: str) -> Organization | None:
    """The organization if the caller is a member, else None (never confirm it exists)."""
    if await permissions.organization_membership(ctx, organization_id) is None:
        return None
    org: Organization | None = await ctx.loaders.organization_by_id.load(organization_id)
    return org


async def members_page(ctx: Context, organization_id: str, args: PageArgs) -> Page[Member]:
    """A page of members; only members of the organization may list them."""
    if await permissions.organization_membership(ctx, organization_id) is None:
        raise NotFound("Organization not found")
    page: Page[Member] = await ctx.loaders.member_pages_by_organization_id.load(
        (organization_id, args)
    )
    return page
