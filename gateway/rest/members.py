"""REST handlers for organization members and roles."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic.json_schema import JsonDict

from gateway.db.models import Member, User
from gateway.rest.framework import Call, PageQuery, Timestamp, Wire, WireIn, rest
from resolvers import members

# Roles are matched without regard to case; the document lists the canonical spelling.
ROLES: JsonDict = {"enum": list(members.ROLES)}


class MemberOut(Wire):
    id: str = Field(description="The member id")
    user_id: str
    organization_id: str
    email: str
    display_name: str
    role: str
    created_at: Timestamp

    @classmethod
    def of(cls, member: Member, user: User | None) -> MemberOut:
        return cls(
            id=member.id,
            user_id=member.user_id,
            organization_id=member.organization_id,
            email=user.email if user is not None else "",
            display_name=user.display_name if user is not None else "",
            role=member.role,
            created_at=member.created_at,
        )


async def members_out(call: Call, found: list[Member]) -> list[MemberOut]:
    """Member objects with their users' email and name, loaded in one query."""
    users = await call.ctx.loaders.user_by_id.load_many([m.user_id for m in found])
    return [MemberOut.of(m, u) for m, u in zip(found, users, strict=True)]


class MemberListOut(Wire):
    items: list[MemberOut]
    next_cursor: str | None


class RemoveMembersIn(WireIn):
    member_ids: list[Annotated[str, Field(max_length=30)]] = Field(
        min_length=1, max_length=members.MAX_REMOVALS
    )


class RemovedMembersOut(Wire):
    removed_member_ids: list[str]


class AvailableRolesOut(Wire):
    roles: list[str]


class ChangeRoleIn(WireIn):
    role: str = Field(max_length=16, json_schema_extra=ROLES)


@rest(query=PageQuery, response=MemberListOut)
async def list_members(call: Call) -> MemberListOut:
    page = await members.members_page(
        # Members are stored oldest first; the contract pages newest first: read backwards.
        call.ctx,
        call.path["orgId"],
        call.query.backward_page_args(call.ctx),
    )
    newest_first = list(reversed(page.items))
    return MemberListOut(
        items=await members_out(call, newest_first),
        next_cursor=page.start_cursor if page.has_previous_page else None,
    )


@rest(body=RemoveMembersIn, response=RemovedMembersOut)
async def remove_members(call: Call) -> RemovedMembersOut:
    removed = await members.remove_members(call.ctx, call.path["orgId"], call.body.member_ids)
    return RemovedMembersOut(removed_member_ids=removed)


@rest(response=AvailableRolesOut)
async def available_roles(call: Call) -> AvailableRolesOut:
    return AvailableRolesOut(roles=await members.available_roles(call.ctx, call.path["orgId"]))


@rest(body=ChangeRoleIn, response=MemberOut)
async def change_role(call: Call) -> MemberOut:
    member = await members.change_member_role(
        call.ctx, call.path["orgId"], call.path["memberId"], call.body.role
    )
    return (await members_out(call, [member]))[0]
