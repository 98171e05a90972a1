"""REST handlers for organization members and roles."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic.json_schema import JsonDict

from gateway.db.models import Member, User
from gateway.rest.framework import Call, rest
from gateway.rest.wire import Out, PageQuery, Timestamp, WireIn
from resolvers import members, permissions

# Roles are matched without regard to case; the document lists the canonical spelling.
ROLES: JsonDict = {"enum": list(members.ROLES)}


class MemberOut(Out):
    id: str = Field(description="The member id")
    user_id: str
    organization_id: str
    email: str
    display_name: str
    role: str
    created_at: Timestamp

    @classmethod
    def of_member(cls, member: Member, user: User | None) -> MemberOut:
        """The member with their user's email and name ("" for a user no longer there)."""
        if user is None:
            return cls.of(member, email="", display_name="")
        return cls.of(member, email=user.email, display_name=user.display_name)


async def members_out(call: Call, found: list[Member]) -> list[MemberOut]:
    """Member objects with their users' email and name, loaded in one query."""
    users = await call.ctx.loaders.user_by_id.load_many([m.user_id for m in found])
    return [MemberOut.of_member(m, u) for m, u in zip(found, users, strict=True)]


class MemberListOut(Out):
    items: list[MemberOut]
    next_cursor: str | None


class RemoveMembersIn(WireIn):
    member_ids: list[Annotated[str, Field(max_length=30)]] = Field(
        min_length=1, max_length=members.MAX_REMOVALS
    )


class RemovedMembersOut(Out):
    removed_member_ids: list[str]


class AvailableRolesOut(Out):
    roles: list[str]


class ChangeRoleIn(WireIn):
    role: str = Field(max_length=16, json_schema_extra=ROLES)


@rest(query=PageQuery, response=MemberListOut)
async def list_members(call: Call) -> MemberListOut:
    # Members are stored oldest first; the contract pages newest first: read backwards.
    args = call.query.page_args(call.ctx, backward=True)
    access = await permissions.member_access(call.ctx, call.path["orgId"])
    page = await members.members_page(call.ctx, access, args)
    newest_first = list(reversed(page.items))
    return MemberListOut(
        items=await members_out(call, newest_first),
        next_cursor=page.start_cursor if page.has_previous_page else None,
    )


@rest(body=RemoveMembersIn, response=RemovedMembersOut)
async def remove_members(call: Call) -> RemovedMembersOut:
    access = await permissions.member_access(call.ctx, call.path["orgId"])
    removed = await members.remove_members(access, call.body.member_ids)
    return RemovedMembersOut(removed_member_ids=removed)


@rest(response=AvailableRolesOut)
async def available_roles(call: Call) -> AvailableRolesOut:
    access = await permissions.member_access(call.ctx, call.path["orgId"])
    return AvailableRolesOut(roles=members.available_roles(access))


@rest(body=ChangeRoleIn, response=MemberOut)
async def change_role(call: Call) -> MemberOut:
    role = members.clean_role(call.body.role)  # a bad role is 400 before the access check
    access = await permissions.manager_access(call.ctx, call.path["orgId"])
    member = await members.change_member_role(access, call.path["memberId"], role)
    return (await members_out(call, [member]))[0]
