"""Member operations: list, change a role, remove, the roles a caller may assign."""

from __future__ import annotations

from collections.abc import Awaitable

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Mapped, aliased
from sqlalchemy.sql.expression import Exists
from sqlmodel import col

from gateway.db.models import ApiKey, Member, Role, User, utcnow
from gateway.errors import Conflict, Forbidden, NotFound, ValidationFailed
from resolvers import permissions
from resolvers.context import Context
from resolvers.loaders.members import MemberWithUser
from resolvers.pagination import GuessedPage, Page, PageArgs
from resolvers.permissions import ManagerAccess, OrgAccess

MAX_REMOVALS = 100
ROLES = [r.value for r in Role]


async def members_page(ctx: Context, access: OrgAccess, args: PageArgs) -> Page[Member]:
    """A page of members, oldest first (for any member: `access`). Whose usage the page may
    show (`Member.usages`) is decided here for all of them when it is everyone's or no one's."""
    decided = args.deciding(
        permissions.MEMBER_USAGE, permissions.may_see_every_member_usage(access.member)
    )
    page: Page[Member] = await ctx.loaders.member_pages_by_organization_id.load(
        (access.organization_id, decided)
    )
    return page


def members_page_ahead(
    ctx: Context, organization_id: str, args: PageArgs
) -> Awaitable[Page[Member]] | GuessedPage | None:
    """The read `members_page` makes, started before access is decided (a read ahead:
    schema/declare.py `reads_ahead`); it shows nothing. Where the page shows the members'
    usage, whose usage depends on the caller's role, not known yet, the read is a guess: as
    the caller's role there was when this process last read it (`RolesSeen`); a wrong guess
    (a role changed since) is read again when the field runs. A caller this process has not
    seen as a member there gets no read ahead: a stranger makes no page of usage be read."""
    if args.deciding(permissions.MEMBER_USAGE, True) == args:  # no rule: no guess
        page: Awaitable[Page[Member]] = ctx.loaders.member_pages_by_organization_id.load(
            (organization_id, args)
        )
        return page
    seen = None
    if ctx.services is not None and ctx.principal is not None and ctx.principal.user_id:
        seen = ctx.services.roles_seen.get(organization_id, ctx.principal.user_id)
    if seen is None:
        return None
    guessed: Awaitable[Page[Member]] = ctx.loaders.member_pages_by_organization_id.load(
        (
            organization_id,
            args.deciding(permissions.MEMBER_USAGE, permissions.every_member_usage_of_role(seen)),
        )
    )
    return GuessedPage(guessed)


def member_user_ahead(ctx: Context, member_id: str) -> Awaitable[MemberWithUser | None]:
    """The user `Member.user` shows, read by the member's id before the member is shown (a
    read ahead: schema/declare.py `reads_ahead`), with the member: it primes the users'
    loader, where the field finds it by the member's user id; it shows nothing."""
    read: Awaitable[MemberWithUser | None] = ctx.loaders.member_with_user_by_id.load(member_id)
    return read


async def members_total(ctx: Context, access: OrgAccess) -> int:
    """`member_count` for a caller who may list the members (a connection's totalCount)."""
    return await member_count(ctx, access.organization_id)


async def viewer_role(ctx: Context, organization_id: str) -> str | None:
    """The caller's role in the organization, or None for a non-member."""
    member = await permissions.organization_membership(ctx, organization_id)
    return member.role if member is not None else None


def available_roles(access: OrgAccess) -> list[str]:
    """The roles the caller may give to others (none for plain members)."""
    return permissions.assignable_roles(access.role)


def clean_role(role: str, field: str = "role") -> str:
    if role not in ROLES:
        raise ValidationFailed(f"{field} must be one of {', '.join(ROLES)}", field=field)
    return role


def check_assignable(actor: Member, role: str) -> None:
    if role not in permissions.assignable_roles(actor.role):
        raise Forbidden(f"You cannot assign the role {role}")


async def _member_of(ctx: Context, organization_id: str, member_id: str) -> Member:
    member: Member | None = await ctx.loaders.member_by_id.load(member_id)
    if member is None or member.organization_id != organization_id:
        raise NotFound("Member not found")
    return member


async def lock_owner_ids(ctx: Context, organization_ids: list[str]) -> set[str]:
    """The organizations' owners, locked (PostgreSQL) so two demotions cannot race to zero.

    SQLite has no row locks: there the write itself is guarded (`another_owner_stays`), and
    SQLite runs one write transaction at a time, its first statement on the latest data."""
    stmt = (
        select(col(Member.id))
        .where(
            col(Member.organization_id).in_(organization_ids), col(Member.role) == Role.OWNER.value
        )
        .with_for_update()
    )
    return set((await ctx.session.execute(stmt)).scalars())


def another_owner_stays(
    organization_id: str | Mapped[str],
    *,
    besides_members: list[str] | None = None,
    besides_user: str = "",
) -> Exists:
    """SQL: the organization (an id, or a column to correlate with) has an owner besides these
    members or this user. Read by the statement that writes, so that no other write comes
    between the check and the change: an organization always keeps an owner."""
    other = aliased(Member)
    return exists().where(
        col(other.organization_id) == organization_id,
        col(other.role) == Role.OWNER.value,
        col(other.id).not_in(besides_members or []),
        col(other.user_id) != besides_user,
    )


async def change_member_role(access: ManagerAccess, member_id: str, role: str) -> Member:
    """Owner/admin: give a member a role the actor may assign; the last owner stays owner.
    (REST checks `role` with `clean_role` before the caller's access, as it always has.)"""
    role = clean_role(role)
    ctx, organization_id, actor = access.ctx, access.organization_id, access.member
    target = await _member_of(ctx, organization_id, member_id)
    check_assignable(actor, role)
    if not permissions.may_manage_member(actor, target):
        raise Forbidden("Admins cannot change an owner's role")
    if target.role == role:
        return target
    guards = []
    if target.role == Role.OWNER.value:
        owners = await lock_owner_ids(ctx, [organization_id])
        if owners <= {target.id}:
            raise Conflict("An organization needs at least one owner")
        guards.append(another_owner_stays(organization_id, besides_members=[target.id]))
    session = ctx.session
    changed = await session.execute(
        update(Member)
        .where(col(Member.id) == target.id, col(Member.role) == target.role, *guards)
        .values(role=role, updated_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        await session.rollback()
        raise Conflict("An organization needs at least one owner")
    await session.commit()
    await session.refresh(target)
    return target


async def remove_members(access: OrgAccess, member_ids: list[str]) -> list[str]:
    """Owner/admin remove members (admins not owners); anyone may remove themself.
    The last owner cannot leave. Returns the removed member ids, in request order."""
    ctx, organization_id, actor = access.ctx, access.organization_id, access.member
    ids = list(dict.fromkeys(member_ids))
    if not ids:
        raise ValidationFailed("memberIds must not be empty", field="memberIds")
    if len(ids) > MAX_REMOVALS:
        raise ValidationFailed(f"At most {MAX_REMOVALS} memberIds at once", field="memberIds")
    found: list[Member | None] = await ctx.loaders.member_by_id.load_many(ids)
    targets = [m for m in found if m is not None and m.organization_id == organization_id]
    if len(targets) != len(ids):
        raise NotFound("Member not found")
    for target in targets:
        if target.id != actor.id and not access.is_manager:
            raise Forbidden("Only organization owners and admins can remove other members")
        if not permissions.may_manage_member(actor, target):
            raise Forbidden("Admins cannot remove owners")
    removed_owner_ids = {t.id for t in targets if t.role == Role.OWNER.value}
    guards = []
    if removed_owner_ids:
        owners = await lock_owner_ids(ctx, [organization_id])
        if owners <= removed_owner_ids:
            raise Conflict("An organization needs at least one owner")
        guards.append(another_owner_stays(organization_id, besides_members=ids))
    now = utcnow()
    session = ctx.session
    # The members go first, in one statement that checks an owner stays (the transaction's
    # first write: on SQLite it waits for, and then sees, any write racing it).
    removed = await session.execute(
        delete(Member)
        .where(col(Member.organization_id) == organization_id, col(Member.id).in_(ids), *guards)
        .execution_options(synchronize_session="fetch")
    )
    if removed.rowcount == 0 and guards:  # type: ignore[attr-defined]
        await session.rollback()
        raise Conflict("An organization needs at least one owner")
    user_ids = [t.user_id for t in targets]
    await session.execute(
        update(User)
        .where(col(User.id).in_(user_ids), col(User.active_organization_id) == organization_id)
        .values(active_organization_id=None, updated_at=now)
    )
    # Keys scoped to this organization are useless to a former member: revoke them.
    await session.execute(
        update(ApiKey)
        .where(
            col(ApiKey.user_id).in_(user_ids),
            col(ApiKey.organization_id) == organization_id,
            col(ApiKey.revoked_at).is_(None),
        )
        .values(revoked_at=now)
    )
    await session.commit()
    ctx.reset_loaders()
    return ids


async def member_count(ctx: Context, organization_id: str) -> int:
    return int(await member_count_ahead(ctx, organization_id))


def member_count_ahead(ctx: Context, organization_id: str) -> Awaitable[int]:
    """The read `member_count` makes, started before its organization is shown (a read
    ahead: schema/declare.py `reads_ahead`); it shows nothing."""
    return ctx.loaders.member_count_by_organization_id.load(organization_id)


async def member_emails(ctx: Context, organization_id: str, emails: list[str]) -> list[str]:
    """Which of these (lowercase) emails belong to members of the organization."""
    stmt = (
        select(col(User.email))
        .join(Member, col(Member.user_id) == col(User.id))
        .where(
            col(Member.organization_id) == organization_id, func.lower(col(User.email)).in_(emails)
        )
    )
    return [e.lower() for e in (await ctx.session.execute(stmt)).scalars()]
