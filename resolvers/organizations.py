"""Organization operations: read, create, update, delete, remote config."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import col

from gateway.db.models import (
    Account,
    AccountKind,
    Invite,
    InviteStatus,
    Member,
    Organization,
    Role,
    User,
    utcnow,
)
from gateway.errors import ValidationFailed
from gateway.inputs import trimmed
from resolvers import permissions, users
from resolvers.context import Context
from resolvers.permissions import ManagerAccess, OrgAccess, OwnerAccess

MAX_NAME = 200
MAX_REMOTE_CONFIG = 65_536


async def get_organization(ctx: Context, organization_id: str) -> Organization | None:
    """The organization if the caller is a member, else None (never confirm it exists)."""
    return await permissions.visible_organization(ctx, organization_id)


async def get_organizations(
    ctx: Context, organization_ids: Sequence[str]
) -> list[Organization | Exception | None]:
    """`get_organization` of several organizations at once, in order (a failed read is that
    organization's error)."""
    return await permissions.visible_organizations(ctx, organization_ids)


def _clean_name(value: str) -> str:
    value = trimmed(value, "name", MAX_NAME)
    if not value:
        raise ValidationFailed("name must not be blank", field="name")
    return value


def clean_remote_config(value: str, *, field: str = "defaultRemoteConfig") -> str:
    """A remote config is a JSON object (as a string) with a string `version`."""
    if len(value) > MAX_REMOTE_CONFIG:
        raise ValidationFailed(
            f"{field} must be at most {MAX_REMOTE_CONFIG} characters", field=field
        )
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise ValidationFailed(f"{field} must be valid JSON", field=field) from exc
    if not isinstance(parsed, dict):
        raise ValidationFailed(f"{field} must be a JSON object", field=field)
    if not isinstance(parsed.get("version"), str):
        raise ValidationFailed(f'{field} must have a string "version"', field=field)
    return value


async def create_organization(ctx: Context, *, name: str) -> Organization:
    """A new organization with its billing account; the caller becomes its owner."""
    user = await users.viewer(ctx)
    org = Organization(name=_clean_name(name))
    session = ctx.session
    session.add(org)
    await session.flush()
    session.add(Account(kind=AccountKind.ORGANIZATION.value, organization_id=org.id))
    session.add(Member(organization_id=org.id, user_id=user.id, role=Role.OWNER.value))
    await session.commit()
    ctx.reset_loaders()
    return org


async def update_organization(
    access: ManagerAccess,
    *,
    name: str | None = None,
    remote_config_enabled: bool | None = None,
    default_remote_config: str | None = None,
) -> Organization:
    """Change settings (owner/admin); arguments left None stay as they are."""
    ctx, org = access.ctx, await access.organization_to_change()
    if name is not None:
        org.name = _clean_name(name)
    if default_remote_config is not None:
        org.default_remote_config = clean_remote_config(default_remote_config)
    if remote_config_enabled is not None:
        org.remote_config_enabled = remote_config_enabled
    org.updated_at = utcnow()
    ctx.session.add(org)
    await ctx.session.commit()
    return org


async def update_remote_config(
    access: ManagerAccess, *, enabled: bool, value: str | None = None
) -> Organization:
    """Turn remote config distribution on or off, optionally with a new value (owner/admin)."""
    ctx, org = access.ctx, await access.organization_to_change()
    if value is not None:
        org.default_remote_config = clean_remote_config(value, field="value")
    org.remote_config_enabled = enabled
    org.updated_at = utcnow()
    ctx.session.add(org)
    await ctx.session.commit()
    return org


async def delete_organization(access: OwnerAccess) -> None:
    """Soft delete (owner only): members lose access, pending invites die, the balance stays."""
    ctx, org = access.ctx, await access.organization_to_change()
    now = utcnow()
    session = ctx.session
    org.deleted_at = now
    org.updated_at = now
    session.add(org)
    await session.execute(
        update(User)
        .where(col(User.active_organization_id) == org.id)
        .values(active_organization_id=None, updated_at=now)
    )
    await session.execute(
        update(Invite)
        .where(
            col(Invite.organization_id) == org.id, col(Invite.status) == InviteStatus.PENDING.value
        )
        .values(status=InviteStatus.REVOKED.value, updated_at=now)
    )
    await session.commit()
    ctx.reset_loaders()


@dataclass
class RemoteConfig:
    enabled: bool
    value: str


def remote_config(access: OrgAccess) -> RemoteConfig:
    """An organization's remote config, for any of its members."""
    org = access.organization
    return RemoteConfig(enabled=org.remote_config_enabled, value=org.default_remote_config or "{}")


@dataclass
class UserRemoteConfig:
    """What the caller's clients should apply: the active (or first) distributing org's config."""

    organization: Organization
    value: str
    enabled: bool
    organizations: list[Organization]


async def user_remote_config(ctx: Context) -> UserRemoteConfig | None:
    """None when no organization of the caller distributes remote config (with an
    organization's API key, only that organization counts: `users.memberships`)."""
    user = await users.viewer_profile(ctx)
    distributing = [
        m for m in await users.memberships(ctx, user.id) if m.organization.remote_config_enabled
    ]
    if not distributing:
        return None
    chosen = next((m for m in distributing if m.active), distributing[0])
    return UserRemoteConfig(
        organization=chosen.organization,
        value=chosen.organization.default_remote_config or "{}",
        enabled=True,
        organizations=[m.organization for m in distributing],
    )
