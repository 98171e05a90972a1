"""GraphQL Member: a user's role in an organization."""

from __future__ import annotations

import enum
import typing
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from gateway.db import models
from resolvers import members, organizations, permissions
from resolvers import usage as metering
from resolvers.batching import load_each
from resolvers.context import Context
from resolvers.loaders.members import MemberWithUser
from schema import declare
from schema.declare import batched, resolve_one
from schema.errors import Payload, mutation
from schema.relay import Node, connections
from schema.rows import FromReaders
from schema.scalars import enum_of
from schema.usage import Usage

if TYPE_CHECKING:
    from schema.organization import Organization
    from schema.user import User


@strawberry.enum(description="A member's role.")
class Role(enum.Enum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


async def users_of(members: Sequence[Member], info: Info) -> list[User | Exception | None]:
    """`Member.user` of a level's members at once (schema/declare.py): one load for all."""
    from schema.user import User

    ctx: Context = info.context
    rows = await load_each(
        ctx.loaders.user_row_by_id, [member._model.user_id for member in members]
    )
    if ctx.field_notes and ctx.settings.read_ahead == "verify":
        await _checked_users(ctx, members, rows)
    return [row if isinstance(row, Exception) else User.unless_deleted(row) for row in rows]


# `GATEWAY_READ_AHEAD=verify`: a member's user read ahead, by the member's id, for
# `users_of` to check that it is the user the field shows (`_checked_users`).
_USER_AHEAD = "user read ahead"


def _user_ahead(member_id: str, info: Info) -> Awaitable[MemberWithUser | None]:
    """`Member.user`'s read ahead: the member with its user, by the member's id."""
    ctx: Context = info.context
    read = members.member_user_ahead(ctx, member_id)
    if ctx.settings.read_ahead == "verify":
        ctx.field_notes[(_USER_AHEAD, member_id)] = read
    return read


async def _checked_users(
    ctx: Context, shown: Sequence[Member], rows: Sequence[models.User | Exception | None]
) -> None:
    """`verify`: the user each member's field got is the one read ahead with the member, if
    it was: the same member, with the same user row (by value: a user already in the
    loader's cache keeps its row)."""
    for member, row in zip(shown, rows, strict=True):
        noted = ctx.field_notes.pop((_USER_AHEAD, member._model.id), None)
        if noted is None or isinstance(row, Exception):
            continue
        ahead = await typing.cast(Awaitable[MemberWithUser | None], noted)
        if ahead is not None:
            member_ahead, user_ahead = ahead
            if (member_ahead.id, member_ahead.user_id, user_ahead) == (
                member._model.id,
                member._model.user_id,
                row,
            ):
                continue
        raise AssertionError(f"the user read ahead for member {member._model.id} did not serve it")


async def organizations_of(
    members: Sequence[Member], info: Info
) -> list[Organization | Exception | None]:
    """`Member.organization` of a level's members at once: each shown if the caller is a
    member of it (`organizations.get_organizations`), in one load for all."""
    from schema.organization import Organization

    rows = await organizations.get_organizations(
        info.context, [member._model.organization_id for member in members]
    )
    return [
        row if row is None or isinstance(row, Exception) else Organization.from_model(row)
        for row in rows
    ]


@strawberry.type
class Member(Node, FromReaders[models.Member]):
    id: strawberry.ID
    role: Role
    created_at: datetime
    updated_at: datetime
    _model: strawberry.Private[models.Member]

    @strawberry.field
    def organization_id(self) -> strawberry.ID:
        return strawberry.ID(self._model.organization_id)

    @strawberry.field
    def user_id(self) -> strawberry.ID:
        return strawberry.ID(self._model.user_id)

    @strawberry.field
    @batched(users_of)
    @declare.reads_ahead(_user_ahead)
    async def user(self, info: Info) -> Annotated[User, strawberry.lazy("schema.user")] | None:
        user: User | None = await resolve_one(users_of, self, info)
        return user

    @strawberry.field
    @batched(organizations_of)
    async def organization(
        self, info: Info
    ) -> Annotated[Organization, strawberry.lazy("schema.organization")] | None:
        org: Organization | None = await resolve_one(organizations_of, self, info)
        return org

    usages = connections(
        Usage,
        metering.visible_member_usages,
        nullable=True,
        description="Usage in this organization, newest first: for owners, admins and the "
        "member themself (null for others).",
    )


def role_of(value: str) -> Role:
    """A stored role as the GraphQL enum (members' and invites' readers)."""
    return enum_of(Role, value)


Member.readers = declare.RecordReaders(
    [
        ("id", "id", None),
        ("role", "role", role_of),
        ("created_at", "created_at", None),
        ("updated_at", "updated_at", None),
    ]
)
# What each Member field reads of its row (schema/declare.py): the relation fields read the
# ids, which every row has.
declare.node_type(
    "Member",
    Member.readers,
    always=("id", "organization_id", "user_id", "role"),
    others={"organizationId": (), "userId": (), "user": (), "organization": (), "usages": ()},
    related={"user": "user"},  # a members page may read their users in the same statement
    model=models.Member,
    enums={"role": Role},
    # `user` (`users_of`) shows the row (null for a deleted user) and checks nothing.
    objects={"user": declare.ToOne("User", "user_id", unless=("deleted_at",))},
    # `usages` (`visible_member_usages`): the member's usage in the organization, newest first,
    # as `usage_pages_by_member` reads it, where `may_see_member_usage` allows it.
    pages={
        "usages": declare.ToMany(
            "Usage",
            keys=(("organization_id", "organization_id"), ("user_id", "user_id")),
            newest_first=True,
            rule=permissions.MEMBER_USAGE,
        )
    },
)


@strawberry.type
class MemberQuery:
    @strawberry.field(description="The roles you may give to members of an organization.")
    async def available_roles(self, info: Info, organization_id: strawberry.ID) -> list[Role]:
        access = await permissions.member_access(info.context, str(organization_id))
        roles = members.available_roles(access)
        return [Role(r) for r in roles]


@strawberry.input
class ChangeMemberRoleInput:
    organization_id: strawberry.ID
    member_id: strawberry.ID
    role: Role


@strawberry.type
class MemberPayload(Payload):
    member: Member | None = None


@strawberry.input
class RemoveMembersInput:
    organization_id: strawberry.ID
    member_ids: list[strawberry.ID]


@strawberry.type
class RemoveMembersPayload(Payload):
    removed_member_ids: list[strawberry.ID] | None = None


@strawberry.type
class MemberMutation:
    @mutation("Give a member another role (owner/admin).")
    async def change_member_role(self, info: Info, input: ChangeMemberRoleInput) -> MemberPayload:
        access = await permissions.manager_access(info.context, str(input.organization_id))
        member = await members.change_member_role(access, str(input.member_id), input.role.value)
        return MemberPayload(member=Member.from_model(member))

    @mutation("Remove members (owner/admin; admins not owners), or leave (your own id).")
    async def remove_members(self, info: Info, input: RemoveMembersInput) -> RemoveMembersPayload:
        access = await permissions.member_access(info.context, str(input.organization_id))
        removed = await members.remove_members(access, [str(i) for i in input.member_ids])
        return RemoveMembersPayload(removed_member_ids=[strawberry.ID(i) for i in removed])
