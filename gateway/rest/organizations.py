"""REST handlers for organizations and remote config."""

from __future__ import annotations

from pydantic import AliasPath, Field

from gateway.db.models import Organization
from gateway.rest.framework import Call, rest
from gateway.rest.wire import Out, Timestamp, WireIn
from resolvers import members, organizations, permissions


class OrganizationOut(Out):
    id: str
    name: str
    created_at: Timestamp
    updated_at: Timestamp
    member_count: int
    remote_config_enabled: bool
    default_remote_config: str = Field(description="A JSON object, encoded as a string")
    external_organization_id: str | None


async def organization_out(call: Call, org: Organization) -> OrganizationOut:
    return OrganizationOut.of(org, member_count=await members.member_count(call.ctx, org.id))


class CreateOrganizationIn(WireIn):
    name: str = Field(max_length=organizations.MAX_NAME)


class UpdateOrganizationIn(WireIn):
    name: str | None = Field(default=None, max_length=organizations.MAX_NAME)
    remote_config_enabled: bool | None = None
    default_remote_config: str | None = Field(
        default=None,
        max_length=organizations.MAX_REMOTE_CONFIG,
        description='A JSON object as a string, with a string "version"',
    )


class RemoteConfigOut(Out):
    enabled: bool
    value: str = Field(description='A JSON object, encoded as a string ("{}" if never set)')


class RemoteConfigOrganizationOut(Out):
    organization_id: str = Field(validation_alias="id")
    name: str


class UserRemoteConfigOut(Out):
    organization_id: str = Field(validation_alias=AliasPath("organization", "id"))
    value: str = Field(description="The active (or first) organization's config, as a string")
    enabled: bool
    organizations: list[RemoteConfigOrganizationOut]


@rest(response=UserRemoteConfigOut | None)
async def get_user_remote_config(call: Call) -> UserRemoteConfigOut | None:
    found = await organizations.user_remote_config(call.ctx)
    return UserRemoteConfigOut.of(found) if found is not None else None


@rest(body=CreateOrganizationIn, response=OrganizationOut, status=201)
async def create_organization(call: Call) -> OrganizationOut:
    org = await organizations.create_organization(call.ctx, name=call.body.name)
    return await organization_out(call, org)


@rest(response=OrganizationOut)
async def get_organization(call: Call) -> OrganizationOut:
    access = await permissions.member_access(call.ctx, call.path["orgId"])
    return await organization_out(call, access.organization)


@rest(body=UpdateOrganizationIn, response=OrganizationOut)
async def update_organization(call: Call) -> OrganizationOut:
    access = await permissions.manager_access(call.ctx, call.path["orgId"])
    org = await organizations.update_organization(
        access,
        name=call.body.name,
        remote_config_enabled=call.body.remote_config_enabled,
        default_remote_config=call.body.default_remote_config,
    )
    return await organization_out(call, org)


@rest(status=204)
async def delete_organization(call: Call) -> None:
    access = await permissions.owner_access(call.ctx, call.path["orgId"])
    await organizations.delete_organization(access)


@rest(response=RemoteConfigOut)
async def get_remote_config(call: Call) -> RemoteConfigOut:
    access = await permissions.member_access(call.ctx, call.path["orgId"])
    found = organizations.remote_config(access)
    return RemoteConfigOut.of(found)
