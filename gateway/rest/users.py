"""REST handlers for /users/me and the active account."""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasPath, BeforeValidator, Field

from gateway.db.models import User
from gateway.rest.framework import Call, rest
from gateway.rest.wire import Out, Timestamp, WireIn
from resolvers import users


class OrganizationMembershipOut(Out):
    organization_id: str = Field(validation_alias=AliasPath("organization", "id"))
    member_id: str = Field(validation_alias=AliasPath("member", "id"))
    name: str = Field(validation_alias=AliasPath("organization", "name"))
    roles: Annotated[list[str], BeforeValidator(lambda role: [role])] = Field(
        validation_alias=AliasPath("member", "role")
    )
    active: bool


class MeOut(Out):
    id: str
    email: str
    display_name: str
    photo_url: str
    terms_accepted_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp
    organizations: list[OrganizationMembershipOut]


class UpdateMeIn(WireIn):
    display_name: str | None = Field(default=None, max_length=users.MAX_DISPLAY_NAME)
    photo_url: str | None = Field(default=None, max_length=users.MAX_PHOTO_URL)


class ActiveAccountIn(WireIn):
    organization_id: str | None = Field(default=None, max_length=30)


async def me_out(call: Call, user: User) -> MeOut:
    return MeOut.of(user, organizations=await users.memberships(call.ctx, user.id))


@rest(response=MeOut)
async def get_me(call: Call) -> MeOut:
    return await me_out(call, await users.viewer_profile(call.ctx))


@rest(body=UpdateMeIn, response=MeOut)
async def update_me(call: Call) -> MeOut:
    user = await users.update_profile(
        call.ctx, display_name=call.body.display_name, photo_url=call.body.photo_url
    )
    return await me_out(call, user)


@rest(status=204)
async def delete_me(call: Call) -> None:
    await users.delete_account(call.ctx)


@rest(response=MeOut)
async def accept_terms(call: Call) -> MeOut:
    return await me_out(call, await users.accept_terms(call.ctx))


@rest(body=ActiveAccountIn, status=204)
async def set_active_account(call: Call) -> None:
    await users.switch_active_account(call.ctx, call.body.organization_id or None)
