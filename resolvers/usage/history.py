"""Usage history: the pages of who used what, for the user, a member and the organization,
and one usage by id (`node(id:)`)."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from gateway.db.models import Member, UsageRecord, User
from gateway.errors import Forbidden, NotFound
from resolvers import permissions
from resolvers.batching import load_each
from resolvers.context import Context
from resolvers.pagination import Page, PageArgs
from resolvers.permissions import ManagerAccess, OrgAccess, PersonalAccess


async def user_usages_page(access: PersonalAccess, args: PageArgs) -> Page[UsageRecord]:
    """The caller's own usage (personal and in organizations), newest first."""
    # Only ever the caller's own pages: nothing to batch with (`fetch`, not `load`).
    page: Page[UsageRecord] = await access.ctx.loaders.usage_pages_by_user_id.fetch(
        (access.user_id, args)
    )
    return page


async def visible_user_usages(
    ctx: Context, user_id: str, args: PageArgs
) -> Page[UsageRecord] | None:
    """`User.usages`: the viewer's own history; None on anyone else."""
    if not permissions.owns_personal_account(ctx, user_id):
        return None
    return await user_usages_page(permissions.personal_access(ctx, user_id), args)


@dataclass
class MemberUsages:
    member: Member
    user: User | None
    page: Page[UsageRecord]


async def member_usages_page(access: OrgAccess, member_id: str, args: PageArgs) -> MemberUsages:
    """A member's usage in the organization: for owners, admins, and the member themself.
    (Callers read the member with the access: `member_access(…, showing_member=member_id)`.)"""
    ctx, organization_id, viewer = access.ctx, access.organization_id, access.member
    found: tuple[Member, User | None] | None = await ctx.loaders.member_with_user_by_id.fetch(
        member_id
    )
    if found is None or found[0].organization_id != organization_id:
        raise NotFound("Member not found")
    member, user = found
    if not permissions.may_see_member_usage(viewer, member):
        raise Forbidden("Only organization owners and admins can see other members' usage")
    page: Page[UsageRecord] = await ctx.loaders.usage_pages_by_member.fetch(
        (organization_id, member.user_id, args)
    )
    return MemberUsages(member=member, user=user, page=page)


async def visible_member_usages(
    ctx: Context, members: Sequence[Member], args: PageArgs
) -> list[Page[UsageRecord] | Exception | None]:
    """`Member.usages` of a level's members: each one's page, or None where the viewer may not
    see it (one statement for all the pages; the viewer's memberships are usually cached)."""
    viewers = await permissions.organization_memberships(
        ctx, [member.organization_id for member in members]
    )
    visible = [permissions.may_see_member_usage(viewers[m.organization_id], m) for m in members]
    keys = [
        (m.organization_id, m.user_id, args)
        for m, seen in zip(members, visible, strict=True)
        if seen
    ]
    found = await load_each(ctx.loaders.usage_pages_by_member, keys)
    pages = iter(found)
    return [next(pages) if seen else None for seen in visible]


async def organization_usages_page(
    ctx: Context, access: ManagerAccess, args: PageArgs
) -> Page[UsageRecord]:
    """Every usage billed in the organization, newest first (owners and admins)."""
    return await organization_usages_page_ahead(ctx, access.organization_id, args)


def organization_usages_page_ahead(
    ctx: Context, organization_id: str, args: PageArgs
) -> Awaitable[Page[UsageRecord]]:
    """The read `organization_usages_page` makes, started before access is decided (a read
    ahead: schema/declare.py `reads_ahead`); it shows nothing."""
    page: Awaitable[Page[UsageRecord]] = ctx.loaders.usage_pages_by_organization_id.load(
        (organization_id, args)
    )
    return page


async def get_usage(ctx: Context, usage_id: str) -> UsageRecord | None:
    """`node(id:)`: a usage that a field shows the caller: their own history (`User.usages`,
    not through an organization's API key), or usage in an organization they belong to that
    `Member.usages` shows them (their own, or anyone's for owners and admins)."""
    usage: UsageRecord | None = await ctx.loaders.usage_by_id.load(usage_id)
    if usage is None or ctx.principal is None:
        return None
    if permissions.may_use_personal_account(ctx, usage.user_id):
        return usage
    if usage.organization_id is None:
        return None
    viewer = await permissions.organization_membership(ctx, usage.organization_id)
    if viewer is None:
        return None
    return usage if viewer.user_id == usage.user_id or viewer.role in permissions.MANAGERS else None
