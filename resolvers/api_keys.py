"""API key operations: list, create (secret shown once), revoke."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.auth import issue_api_key
from gateway.db.models import ApiKey, User, utcnow
from gateway.errors import Forbidden, NotFound, ValidationFailed
from gateway.inputs import trimmed
from resolvers import permissions
from resolvers.context import Context
from resolvers.keyset import page_of
from resolvers.pagination import Page, PageArgs
from resolvers.permissions import OrgAccess

MAX_NAME = 200
_LIVE = col(ApiKey.revoked_at).is_(None)


async def insert_api_key(
    session: AsyncSession,
    *,
    user_id: str,
    name: str,
    organization_id: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Add a key row (not committed) and return it with its one-time secret."""
    issued = issue_api_key()
    key = ApiKey(
        user_id=user_id,
        organization_id=organization_id,
        name=name,
        lookup=issued.lookup,
        prefix=issued.prefix,
        secret_hash=issued.secret_hash,
        expires_at=expires_at,
    )
    session.add(key)
    return key, issued.token


@dataclass
class CreatedApiKey:
    """A new key and its secret: the only moment the secret is known."""

    api_key: ApiKey
    secret: str


def _clean_name(name: str) -> str:
    name = trimmed(name, "name", MAX_NAME)
    if not name:
        raise ValidationFailed("name must not be empty", field="name")
    return name


def _clean_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise ValidationFailed("expiresAt needs a timezone (use Z for UTC)", field="expiresAt")
    expires_at = expires_at.astimezone(UTC)
    if expires_at <= utcnow():
        raise ValidationFailed("expiresAt must be in the future", field="expiresAt")
    return expires_at


def _key_scope(ctx: Context) -> str | None:
    """The organization the calling API key is limited to, if it is an organization key."""
    return ctx.principal.api_key_organization_id if ctx.principal is not None else None


async def user_api_keys(ctx: Context, user_id: str, args: PageArgs) -> Page[ApiKey] | None:
    """A user's live keys, newest first; only the user sees them (None for anyone else).

    Called with an organization key, only that organization's keys of the user are listed."""
    if ctx.user_id != user_id:
        return None
    scope = _key_scope(ctx)
    if scope is not None:
        live_here = [col(ApiKey.user_id) == user_id, col(ApiKey.organization_id) == scope]
        return await page_of(ctx.session, ApiKey, args, where=[*live_here, _LIVE], plain=True)
    page: Page[ApiKey] = await ctx.loaders.api_key_pages_by_user_id.load((user_id, args))
    return page


async def user_api_key_count(ctx: Context, user_id: str) -> int | None:
    """How many keys `user_api_keys` lists over all its pages (None for anyone else)."""
    if ctx.user_id != user_id:
        return None
    scope = _key_scope(ctx)
    if scope is not None:
        where = [col(ApiKey.user_id) == user_id, col(ApiKey.organization_id) == scope, _LIVE]
        stmt = select(func.count()).select_from(ApiKey).where(*where)
        return int((await ctx.session.execute(stmt)).scalar_one())
    return int(await ctx.loaders.api_key_count_by_user_id.load(user_id))


async def my_api_keys(ctx: Context, args: PageArgs) -> Page[ApiKey]:
    """The caller's live keys (personal and organization ones), newest first."""
    page = await user_api_keys(ctx, ctx.user_id, args)
    assert page is not None
    return page


async def organization_api_keys(ctx: Context, access: OrgAccess, args: PageArgs) -> Page[ApiKey]:
    """An organization's live keys, newest first; any member may list them."""
    return await organization_api_keys_ahead(ctx, access.organization_id, args)


def organization_api_keys_ahead(
    ctx: Context, organization_id: str, args: PageArgs
) -> Awaitable[Page[ApiKey]]:
    """The read `organization_api_keys` makes, started before access is decided (a read
    ahead: schema/declare.py `reads_ahead`); it shows nothing."""
    return ctx.loaders.api_key_pages_by_organization_id.load((organization_id, args))


async def organization_api_key_count(ctx: Context, access: OrgAccess) -> int:
    """How many live keys the organization has (members)."""
    return int(await organization_api_key_count_ahead(ctx, access.organization_id))


def organization_api_key_count_ahead(ctx: Context, organization_id: str) -> Awaitable[int]:
    """The read `organization_api_key_count` makes, as a read ahead."""
    return ctx.loaders.api_key_count_by_organization_id.load(organization_id)


def provider_api_keys(access: OrgAccess) -> str:
    """The inference providers' keys handed to members' clients, as a JSON object string."""
    return json.dumps(access.ctx.settings.provider_api_key_map(), separators=(",", ":"))


async def get_api_key(ctx: Context, key_id: str) -> ApiKey | None:
    """A live key the caller may see: their own, or one of an organization they belong to."""
    key: ApiKey | None = await ctx.loaders.api_key_by_id.load(key_id)
    if key is None or key.revoked_at is not None:
        return None
    scope = _key_scope(ctx)
    if scope is not None and key.organization_id != scope:
        return None
    if key.user_id == ctx.user_id:
        return key
    if (
        key.organization_id is not None
        and await permissions.organization_membership(ctx, key.organization_id) is not None
    ):
        return key
    return None


async def create_api_key(
    ctx: Context,
    *,
    name: str,
    organization_id: str | None = None,
    expires_at: datetime | None = None,
) -> CreatedApiKey:
    """A new key for the caller; an organization key needs owner or admin of that organization."""
    user_id = ctx.user_id
    name = _clean_name(name)
    expires_at = _clean_expiry(expires_at)
    scope = _key_scope(ctx)
    if scope is not None and organization_id != scope:
        # An organization key must not mint a key that reaches further than itself.
        raise Forbidden("An organization API key can only create keys for its organization")
    if organization_id:
        # Checked here, after the inputs, since only an organization key needs it.
        await permissions.manager_access(ctx, organization_id)
    key, secret = await insert_api_key(
        ctx.session,
        user_id=user_id,
        name=name,
        organization_id=organization_id or None,
        expires_at=expires_at,
    )
    await ctx.session.commit()
    await ctx.session.refresh(key)
    return CreatedApiKey(api_key=key, secret=secret)


async def delete_api_key(ctx: Context, key_id: str) -> str:
    """Revoke one of the caller's keys; it stops authenticating at once."""
    user_id = ctx.user_id
    mine = [col(ApiKey.id) == key_id, col(ApiKey.user_id) == user_id]
    scope = _key_scope(ctx)
    if scope is not None:
        mine.append(col(ApiKey.organization_id) == scope)
    await revoke_api_key(ctx.session, mine)
    ctx.reset_loaders()
    return key_id


async def revoke_api_key(session: AsyncSession, which: list[ColumnElement[bool]]) -> None:
    """Revoke the one live key `which` selects (committed); NotFound when there is none. The
    caller's own keys (`delete_api_key`) and any key by id for operators (`gateway keys
    revoke`)."""
    statement = update(ApiKey).where(*which, _LIVE).values(revoked_at=utcnow())
    result = await session.execute(statement)
    if getattr(result, "rowcount", 0) != 1:
        await session.rollback()
        raise NotFound("API key not found")
    await session.commit()


@dataclass(frozen=True)
class KeyListing:
    """An API key as operators see it: never its secret or its hash."""

    key: ApiKey
    email: str


async def all_api_keys(
    session: AsyncSession, *, email: str | None = None, revoked: bool = False, limit: int = 1000
) -> list[KeyListing]:
    """Operators' view of keys, newest first (`gateway keys list`): every user's, or one
    user's by email; live ones unless `revoked`."""
    statement = (
        select(ApiKey, col(User.email))
        .join(User, col(User.id) == col(ApiKey.user_id))
        .order_by(col(ApiKey.id).desc())
        .limit(limit)
    )
    if email is not None:
        statement = statement.where(col(User.email) == email.strip().lower())
    if not revoked:
        statement = statement.where(_LIVE)
    rows = (await session.execute(statement)).all()
    return [KeyListing(key=key, email=key_email) for key, key_email in rows]
