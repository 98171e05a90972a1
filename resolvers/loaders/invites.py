"""Invites' loaders: by id, and an organization's pending invites (pages and counts)."""

from __future__ import annotations

from sqlmodel import col

from gateway.db.expressions import constant
from gateway.db.models import Invite, InviteStatus
from resolvers.loaders.shapes import CountByKey, PageByParent, RowByKey

_PENDING = (col(Invite.status) == constant(InviteStatus.PENDING.value),)

invite_by_id = RowByKey(Invite, col(Invite.id))
# Read-only rows (`plain`): listed invites are shown, never modified here.
invite_pages_by_organization_id = PageByParent(
    Invite, col(Invite.organization_id), newest_first=True, where=_PENDING, plain=True
)
invite_count_by_organization_id = CountByKey(Invite, col(Invite.organization_id), _PENDING)
