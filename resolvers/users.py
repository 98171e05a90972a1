"""User operations: the viewer, profile, terms, account deletion, the active account."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.auth import ensure_personal_account
from gateway.db.models import (
    ApiKey,
    Member,
    Organization,
    Role,
    User,
    utcnow,
)
from gateway.errors import Conflict, NotFound, ValidationFailed
from gateway.inputs import trimmed
from resolvers import permissions
from resolvers.context import Context
from resolvers.members import another_owner_stays, lock_owner_ids

MAX_DISPLAY_NAME = 200
MAX_PHOTO_URL = 2048


async def viewer(ctx: Context) -> User:
    """The authenticated user, as an ORM instance to change (writers): acting on the personal
    account, which an organization's API key does not reach (`require_personal_account`)."""
    user: User | None = await ctx.loaders.user_by_id.load(permissions.require_personal_account(ctx))
    if user is None or user.deleted_at is not None:
        raise NotFound("User not found")
    return user


async def viewer_profile(ctx: Context) -> User:
    """The authenticated user, to show: a read-only row with the same attributes, which
    usually came with the API key's authentication (`Loaders.user_row_by_id`)."""
    user: User | None = await ctx.loaders.user_row_by_id.load(ctx.user_id)
    if user is None or user.deleted_at is not None:
        raise NotFound("User not found")
    return user


async def get_user(ctx: Context, user_id: str) -> User | None:
    """A user the caller may see (themself or someone sharing an organization), else None."""
    if not await permissions.can_see_user(ctx, user_id):
        return None
    # Only shown: a read-only row (the same attributes as a User, cheaper to load).
    user: User | None = await ctx.loaders.user_row_by_id.load(user_id)
    return user if user is not None and user.deleted_at is None else None


async def active_organization(ctx: Context, user: User) -> Organization | None:
    """`User.active_organization`: where the caller's usage is billed; None on anyone else
    and for the personal account."""
    org_id = user.active_organization_id
    if org_id is None or not permissions.is_self(ctx, user.id):
        return None
    return await permissions.visible_organization(ctx, org_id)


@dataclass
class Membership:
    member: Member
    organization: Organization
    active: bool


async def memberships(ctx: Context, user_id: str) -> list[Membership]:
    """The user's memberships in live organizations the caller may see, oldest first: all of
    the caller's own; of a colleague, only organizations the caller belongs to too; with an
    organization's API key, only that organization (`permissions.visible_organization_ids`)."""
    # Read-only rows: the caller's own user row costs no statement (authentication read it).
    user: User | None = await ctx.loaders.user_row_by_id.load(user_id)
    members: list[Member] = await ctx.loaders.members_by_user_id.load(user_id)
    visible = await permissions.visible_organization_ids(
        ctx, user_id, [m.organization_id for m in members]
    )
    members = [m for m in members if m.organization_id in visible]
    orgs = await ctx.loaders.organization_row_by_id.load_many([m.organization_id for m in members])
    active_id = user.active_organization_id if user else None
    return [
        Membership(member=m, organization=org, active=org.id == active_id)
        for m, org in zip(members, orgs, strict=True)
        if org is not None
    ]


def _clean_display_name(value: str) -> str:
    return trimmed(value, "displayName", MAX_DISPLAY_NAME)


def _clean_photo_url(value: str) -> str:
    value = value.strip()
    if value and not value.startswith(("https://", "http://")):
        raise ValidationFailed("photoUrl must be an http(s) URL", field="photoUrl")
    if len(value) > MAX_PHOTO_URL:
        raise ValidationFailed(
            f"photoUrl must be at most {MAX_PHOTO_URL} characters", field="photoUrl"
        )
    return value


async def update_profile(
    ctx: Context, *, display_name: str | None = None, photo_url: str | None = None
) -> User:
    user = await viewer(ctx)
    if display_name is not None:
        user.display_name = _clean_display_name(display_name)
    if photo_url is not None:
        user.photo_url = _clean_photo_url(photo_url)
    user.updated_at = utcnow()
    ctx.session.add(user)
    await ctx.session.commit()
    return user


async def accept_terms(ctx: Context) -> User:
    """Records the first acceptance; accepting again keeps that first time."""
    user = await viewer(ctx)
    if user.terms_accepted_at is None:
        now = utcnow()
        await ctx.session.execute(
            update(User)
            .where(col(User.id) == user.id, col(User.terms_accepted_at).is_(None))
            .values(terms_accepted_at=now, updated_at=now)
        )
        await ctx.session.commit()
        await ctx.session.refresh(user)
    return user


async def switch_active_account(ctx: Context, organization_id: str | None) -> User:
    """Make an organization (or, with None, the personal account) the one usage is billed to."""
    user = await viewer(ctx)
    if organization_id:
        if await permissions.organization_membership(ctx, organization_id) is None:
            raise NotFound("Organization not found")
    user.active_organization_id = organization_id or None
    user.updated_at = utcnow()
    ctx.session.add(user)
    await ctx.session.commit()
    return user


async def delete_account(ctx: Context) -> None:
    """Delete the caller: memberships and keys go, organizations left empty are deleted,
    payments and usage stay on record under a scrubbed user."""
    user = await viewer(ctx)
    session = ctx.session
    now = utcnow()
    owned = (
        (
            await session.execute(
                select(col(Member.organization_id)).where(
                    col(Member.user_id) == user.id, col(Member.role) == Role.OWNER.value
                )
            )
        )
        .scalars()
        .all()
    )
    last_owner = Conflict(
        "You are the last owner of an organization that has other members: "
        "transfer ownership or remove them first"
    )
    contested: list[str] = []  # organizations with other members: another owner must stay
    emptied: list[str] = []
    for org_id in owned:
        other_owners = await session.scalar(
            select(func.count()).where(
                col(Member.organization_id) == org_id,
                col(Member.role) == Role.OWNER.value,
                col(Member.user_id) != user.id,
            )
        )
        others = await session.scalar(
            select(func.count()).where(
                col(Member.organization_id) == org_id, col(Member.user_id) != user.id
            )
        )
        if others and not other_owners:
            raise last_owner
        (contested if others else emptied).append(org_id)
    if contested:
        # The first write, checking in its own statement that another owner stays (two owners
        # leaving at once: one of them is refused), after the owners are locked (PostgreSQL).
        await lock_owner_ids(ctx, contested)
        left = await session.execute(
            delete(Member)
            .where(
                col(Member.user_id) == user.id,
                col(Member.role) == Role.OWNER.value,
                col(Member.organization_id).in_(contested),
                another_owner_stays(col(Member.organization_id), besides_user=user.id),
            )
            .execution_options(synchronize_session="fetch")
        )
        if left.rowcount != len(contested):  # type: ignore[attr-defined]
            await session.rollback()
            raise last_owner
    for org_id in emptied:
        await session.execute(
            update(Organization)
            .where(col(Organization.id) == org_id, col(Organization.deleted_at).is_(None))
            .values(deleted_at=now, updated_at=now)
        )
    await session.execute(
        update(ApiKey)
        .where(col(ApiKey.user_id) == user.id, col(ApiKey.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    for member in (
        await session.execute(select(Member).where(col(Member.user_id) == user.id))
    ).scalars():
        await session.delete(member)
    user.email = f"deleted+{user.id.lower()}@users.invalid"
    user.display_name = ""
    user.photo_url = ""
    user.external_subject = None
    user.active_organization_id = None
    user.deleted_at = now
    user.updated_at = now
    session.add(user)
    await session.commit()


async def create_user(session: AsyncSession, *, email: str, display_name: str = "") -> User:
    """Create a user with its personal billing account (CLI and tests; not committed)."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise ValidationFailed("A valid email address is required", field="email")
    exists = await session.scalar(select(func.count()).where(col(User.email) == email))
    if exists:
        raise Conflict(f"A user with email {email} already exists")
    user = User(email=email, display_name=_clean_display_name(display_name))
    session.add(user)
    await session.flush()
    await ensure_personal_account(session, user.id)
    await session.flush()
    return user


async def all_users(
    session: AsyncSession, *, deleted: bool = False, limit: int = 1000
) -> list[User]:
    """Operators' view of users, newest first (`gateway users list`); deleted ones (their
    personal data already erased) only when asked."""
    statement = select(User).order_by(col(User.id).desc()).limit(limit)
    if not deleted:
        statement = statement.where(col(User.deleted_at).is_(None))
    return list((await session.execute(statement)).scalars())
