"""REST handlers for invites."""

from __future__ import annotations

from pydantic import Field

from gateway.rest.framework import Call, rest
from gateway.rest.members import ROLES, MemberOut, members_out
from gateway.rest.wire import Out, PageQuery, Timestamp, WireIn, from_settings
from resolvers import invites, permissions


class InviteOut(Out):
    id: str
    email: str
    role: str
    status: str
    invited_by: str = Field(
        validation_alias="invited_by_user_id",
        description="The id of the user who sent the invite",
    )
    created_at: Timestamp
    expires_at: Timestamp


class SentInviteOut(InviteOut):
    accept_token: str = Field(
        description="Deliver to the invitee (also e-mailed when GATEWAY_SMTP_URL is set):"
        " shown only in this response"
    )


class InviteListOut(Out):
    items: list[InviteOut]
    next_cursor: str | None


class SentInvitesOut(Out):
    items: list[SentInviteOut]


class InviteeIn(WireIn):
    email: str = Field(max_length=invites.MAX_EMAIL)
    role: str = Field(default="member", max_length=16, json_schema_extra=ROLES)


class SendInvitesIn(WireIn):
    invites: list[InviteeIn] = Field(
        description="At most GATEWAY_MAX_INVITES_PER_REQUEST (50)",
        json_schema_extra={"minItems": 1, **from_settings(maxItems="max_invites_per_request")},
    )


class InviteCountOut(Out):
    count: int


class AcceptInviteIn(WireIn):
    token: str = Field(max_length=200)


@rest(query=PageQuery, response=InviteListOut)
async def list_invites(call: Call) -> InviteListOut:
    args = call.query.page_args(call.ctx)
    access = await permissions.manager_access(call.ctx, call.path["orgId"])
    page = await invites.invites_page(call.ctx, access, args)
    return InviteListOut.of(page)


@rest(body=SendInvitesIn, response=SentInvitesOut, status=201)
async def send_invites(call: Call) -> SentInvitesOut:
    access = await permissions.manager_access(call.ctx, call.path["orgId"])
    sent = await invites.send_invites(
        access,
        [invites.InviteRequest(email=i.email, role=i.role) for i in call.body.invites],
    )
    return SentInvitesOut(
        items=[SentInviteOut.of(s.invite, accept_token=s.accept_token) for s in sent]
    )


@rest(response=InviteCountOut)
async def count_invites(call: Call) -> InviteCountOut:
    access = await permissions.manager_access(call.ctx, call.path["orgId"])
    return InviteCountOut(count=await invites.invite_count(call.ctx, access))


@rest(status=204)
async def revoke_invite(call: Call) -> None:
    access = await permissions.manager_access(call.ctx, call.path["orgId"])
    await invites.revoke_invite(access, call.path["inviteId"])


@rest(body=AcceptInviteIn, response=MemberOut)
async def accept_invite(call: Call) -> MemberOut:
    member = await invites.accept_invite(call.ctx, call.body.token)
    return (await members_out(call, [member]))[0]
