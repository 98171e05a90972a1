"""GraphQL Invite: an emailed offer to join an organization, accepted with a one-time token."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from gateway.db import models
from resolvers import invites, organizations, permissions, plan_changes
from schema import declare
from schema.errors import Payload, mutation
from schema.member import Member, Role, role_of
from schema.relay import Node
from schema.rows import FromReaders
from schema.scalars import enum_of

if TYPE_CHECKING:
    from schema.organization import Organization
    from schema.user import User


@strawberry.enum(description="Where an invite stands.")
class InviteStatus(enum.Enum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REVOKED = "revoked"


@strawberry.type
class Invite(Node, FromReaders[models.Invite]):
    id: strawberry.ID
    email: str
    role: Role
    status: InviteStatus
    created_at: datetime
    expires_at: datetime
    _model: strawberry.Private[models.Invite]

    @strawberry.field(description="The user who sent (or last refreshed) the invite.")
    async def invited_by(
        self, info: Info
    ) -> Annotated[User, strawberry.lazy("schema.user")] | None:
        from schema.user import User

        user = await info.context.loaders.user_row_by_id.load(self._model.invited_by_user_id)
        return User.unless_deleted(user)

    @strawberry.field
    async def organization(
        self, info: Info
    ) -> Annotated[Organization, strawberry.lazy("schema.organization")] | None:
        from schema.organization import Organization

        org = await organizations.get_organization(info.context, self._model.organization_id)
        return Organization.from_model(org) if org is not None else None


def _status(value: str) -> InviteStatus:
    return enum_of(InviteStatus, value)


Invite.readers = declare.RecordReaders(
    [
        ("id", "id", None),
        ("email", "email", None),
        ("role", "role", role_of),
        ("status", "status", _status),
        ("created_at", "created_at", None),
        ("expires_at", "expires_at", None),
    ]
)
# What each Invite field reads of its row (schema/declare.py): the relation fields read the
# ids, which every row has.
declare.node_type(
    "Invite",
    Invite.readers,
    always=("id", "organization_id", "invited_by_user_id"),
    others={"invitedBy": (), "organization": ()},
    model=models.Invite,
    enums={"role": Role, "status": InviteStatus},
    # `invitedBy` shows the row (null for a deleted user) and checks nothing; `organization`
    # checks who may see it, and stays a resolver.
    objects={"invitedBy": declare.ToOne("User", "invited_by_user_id", unless=("deleted_at",))},
)


@strawberry.type(description="A sent invite and its token, shown only here.")
class SentInvite:
    invite: Invite
    accept_token: str = strawberry.field(
        description="Deliver to the invitee; it is stored only hashed and never shown again."
    )


@strawberry.input
class InviteeInput:
    email: str
    role: Role = Role.MEMBER


@strawberry.input
class SendInvitesInput:
    organization_id: strawberry.ID
    invites: list[InviteeInput]


@strawberry.type
class SendInvitesPayload(Payload):
    invites: list[SentInvite] | None = None
    seats_available: int | None = strawberry.field(
        default=None,
        description="Seats of the organization's plan still free (each acceptance takes one; "
        "one past the last is refused with SEATS_EXHAUSTED); null without a plan.",
    )


@strawberry.input
class RevokeInviteInput:
    organization_id: strawberry.ID
    invite_id: strawberry.ID


@strawberry.type
class InvitePayload(Payload):
    invite: Invite | None = None


@strawberry.input
class AcceptInviteInput:
    token: str


@strawberry.type
class AcceptInvitePayload(Payload):
    member: Member | None = None


@strawberry.type
class InviteMutation:
    @mutation("Invite people by email (owner/admin); re-inviting refreshes a pending invite.")
    async def send_invites(self, info: Info, input: SendInvitesInput) -> SendInvitesPayload:
        access = await permissions.manager_access(info.context, str(input.organization_id))
        sent = await invites.send_invites(
            access,
            [invites.InviteRequest(email=i.email, role=i.role.value) for i in input.invites],
        )
        return SendInvitesPayload(
            invites=[
                SentInvite(invite=Invite.from_model(s.invite), accept_token=s.accept_token)
                for s in sent
            ],
            seats_available=await plan_changes.organization_seats_available(access),
        )

    @mutation("Withdraw a pending invite (owner/admin).")
    async def revoke_invite(self, info: Info, input: RevokeInviteInput) -> InvitePayload:
        access = await permissions.manager_access(info.context, str(input.organization_id))
        invite = await invites.revoke_invite(access, str(input.invite_id))
        return InvitePayload(invite=Invite.from_model(invite))

    @mutation("Join an organization with the token of an invite to you.")
    async def accept_invite(self, info: Info, input: AcceptInviteInput) -> AcceptInvitePayload:
        member = await invites.accept_invite(info.context, input.token)
        return AcceptInvitePayload(member=Member.from_model(member))
