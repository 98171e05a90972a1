"""Invite operations: list, send (the token is shown once), revoke, accept."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlmodel import col

from gateway.db.models import Invite, InviteStatus, Member, Organization, utcnow
from gateway.errors import Conflict, Forbidden, NotFound, Unprocessable, ValidationFailed
from gateway.mail import outbox
from resolvers import members, permissions, plan_changes, users
from resolvers.context import Context
from resolvers.pagination import Page, PageArgs
from resolvers.permissions import ManagerAccess

TOKEN_PREFIX = "gwi_"
MAX_EMAIL = 320


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass
class InviteRequest:
    email: str
    role: str = "member"


@dataclass
class SentInvite:
    invite: Invite
    accept_token: str


async def get_invite(ctx: Context, invite_id: str) -> Invite | None:
    """An invite its organization's owners and admins may see, else None."""
    invite: Invite | None = await ctx.loaders.invite_by_id.load(invite_id)
    if invite is None:
        return None
    member = await permissions.organization_membership(ctx, invite.organization_id)
    if member is None or member.role not in permissions.MANAGERS:
        return None
    return invite


async def invites_page(ctx: Context, access: ManagerAccess, args: PageArgs) -> Page[Invite]:
    """Pending invites, newest first (owner/admin)."""
    return await invites_page_ahead(ctx, access.organization_id, args)


def invites_page_ahead(
    ctx: Context, organization_id: str, args: PageArgs
) -> Awaitable[Page[Invite]]:
    """The read `invites_page` makes, started before access is decided (a read ahead:
    schema/declare.py `reads_ahead`); it shows nothing."""
    return ctx.loaders.invite_pages_by_organization_id.load((organization_id, args))


async def invite_count(ctx: Context, access: ManagerAccess) -> int:
    """The number of pending invites (owner/admin)."""
    return int(await invite_count_ahead(ctx, access.organization_id))


def invite_count_ahead(ctx: Context, organization_id: str) -> Awaitable[int]:
    """The read `invite_count` makes, as a read ahead."""
    return ctx.loaders.invite_count_by_organization_id.load(organization_id)


def _clean_email(value: str, index: int) -> str:
    email = value.strip().lower()
    local, _, domain = email.partition("@")
    if (
        not local
        or "." not in domain
        or len(email) > MAX_EMAIL
        or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in email)
    ):
        raise ValidationFailed(
            f"invites[{index}].email is not a valid email address", field="email"
        )
    return email


async def send_invites(access: ManagerAccess, requests: list[InviteRequest]) -> list[SentInvite]:
    """Invite people (owner/admin): a pending invite to the same email gets a fresh token and
    expiry; a current member's email is a conflict. Every invite or none is written."""
    ctx, organization_id, actor = access.ctx, access.organization_id, access.member
    limit = ctx.settings.max_invites_per_request
    if not requests:
        raise ValidationFailed("invites must not be empty", field="invites")
    if len(requests) > limit:
        raise ValidationFailed(f"At most {limit} invites per request", field="invites")
    cleaned: dict[str, str] = {}
    for index, request in enumerate(requests):
        email = _clean_email(request.email, index)
        role = members.clean_role(request.role, field=f"invites[{index}].role")
        members.check_assignable(actor, role)
        if email in cleaned:
            raise ValidationFailed(f"{email} is listed twice", field="email")
        cleaned[email] = role
    already = await members.member_emails(ctx, organization_id, list(cleaned))
    if already:
        raise Conflict(f"{already[0]} is already a member of this organization")
    session = ctx.session
    pending = {
        invite.email: invite
        for invite in (
            await session.execute(
                select(Invite).where(
                    col(Invite.organization_id) == organization_id,
                    col(Invite.status) == InviteStatus.PENDING.value,
                    col(Invite.email).in_(list(cleaned)),
                )
            )
        ).scalars()
    }
    for invite in pending.values():
        # Re-inviting replaces the pending invite (role, token, inviter): only for a role the
        # actor could give, as revoking it (an admin cannot turn an owner's invite into theirs).
        if invite.role not in permissions.assignable_roles(actor.role):
            raise Forbidden(f"You cannot replace an invite for the role {invite.role}")
    now = utcnow()
    expires_at = now + timedelta(hours=ctx.settings.invite_ttl_hours)
    sent = []
    for email, role in cleaned.items():
        token = new_token()
        invite = pending.get(email) or Invite(
            organization_id=organization_id,
            email=email,
            invited_by_user_id=actor.user_id,
            token_hash="",
            expires_at=expires_at,
        )
        invite.role = role
        invite.token_hash = hash_token(token)
        invite.invited_by_user_id = actor.user_id
        invite.expires_at = expires_at
        invite.updated_at = now
        session.add(invite)
        await session.flush()  # the invite's id, for its mail
        # Same transaction as the invite: committed together, or neither.
        outbox.queue_invite(
            session,
            ctx.settings,
            invite_id=invite.id,
            email=email,
            organization_name=access.organization.name,
            role=role,
            token=token,
            expires_at=expires_at,
        )
        sent.append(SentInvite(invite=invite, accept_token=token))
    await session.commit()
    ctx.reset_loaders()
    return sent


async def _invite_of(ctx: Context, organization_id: str, invite_id: str) -> Invite:
    invite: Invite | None = await ctx.loaders.invite_by_id.load(invite_id)
    if invite is None or invite.organization_id != organization_id:
        raise NotFound("Invite not found")
    return invite


async def revoke_invite(access: ManagerAccess, invite_id: str) -> Invite:
    """Owner/admin withdraw a pending invite; revoking twice is harmless."""
    ctx, organization_id, actor = access.ctx, access.organization_id, access.member
    invite = await _invite_of(ctx, organization_id, invite_id)
    members.check_assignable(actor, invite.role)
    if invite.status == InviteStatus.ACCEPTED.value:
        raise Unprocessable("Invite already used")
    if invite.status == InviteStatus.PENDING.value:
        invite.status = InviteStatus.REVOKED.value
        invite.updated_at = utcnow()
        ctx.session.add(invite)
        await ctx.session.commit()
        ctx.reset_loaders()
    return invite


async def accept_invite(ctx: Context, token: str) -> Member:
    """Join the organization of the invite this token belongs to, as the invited email."""
    user = await users.viewer(ctx)
    token = token.strip()
    if not token:
        raise ValidationFailed("token is required", field="token")
    session = ctx.session
    invite = await session.scalar(select(Invite).where(col(Invite.token_hash) == hash_token(token)))
    org: Organization | None = (
        await ctx.loaders.organization_by_id.load(invite.organization_id) if invite else None
    )
    if invite is None or org is None:
        raise NotFound("Invite not found")
    if invite.email.lower() != user.email.lower():
        raise Forbidden("This invite was sent to another email address")
    if invite.status == InviteStatus.ACCEPTED.value:
        raise Unprocessable("Invite already used")
    if invite.status == InviteStatus.REVOKED.value:
        raise Unprocessable("Invite revoked")
    now = utcnow()
    if invite.expires_at <= now:
        raise Unprocessable("Invite expired")
    existing = await session.scalar(
        select(func.count()).where(
            col(Member.organization_id) == invite.organization_id, col(Member.user_id) == user.id
        )
    )
    if existing:
        raise Conflict("You are already a member of this organization")
    await plan_changes.hold_seat(ctx, invite.organization_id)
    # Only one acceptance wins, even when two requests race with the same token.
    claimed = await session.execute(
        update(Invite)
        .where(col(Invite.id) == invite.id, col(Invite.status) == InviteStatus.PENDING.value)
        .values(status=InviteStatus.ACCEPTED.value, accepted_at=now, updated_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Unprocessable("Invite already used")
    member = Member(organization_id=invite.organization_id, user_id=user.id, role=invite.role)
    session.add(member)
    await session.commit()
    ctx.reset_loaders()
    return member
