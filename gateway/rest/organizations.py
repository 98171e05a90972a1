"""REST handlers for organizations and remote config."""

from __future__ import annotations

from pydantic import Field

from gateway.db.models import Organization
from gateway.rest.framework import Call, rest
from gateway.rest.wire import Timestamp, Wire, WireIn
from resolvers import members, organizations


class OrganizationOut(Wire):
    id: str
    name: str
    created_at: Timestamp
    updated_at: Timestamp
    member_count: int
    remote_config_enabled: bool
    default_remote_config: str = Field(description="A JSON object, encoded as a string")
    external_organization_id: str | None


async def organization_out(call: Call, org: Organization) -> OrganizationOut:
    return OrganizationOut(
        id=org.id,
        name=org.name,
        created_at=org.created_at,
        updated_at=org.updated_at,
        member_count=await members.member_count(call.ctx, org.id),
        remote_config_enabled=org.remote_config_enabled,
        default_remote_config=org.default_remote_config,
        external_organization_id=org.external_organization_id,
    )


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


class RemoteConfigOut(Wire):
    enabled: bool
    value: str = Field(description='A JSON object, encoded as a string ("{}" if never set)')


class RemoteConfigOrganizationOut(Wire):
    organization_id: str
    name: str


class UserRemoteConfigOut(Wire):
    organization_id: str
    value: str = Field(description="The active (or first) organization's config, as a string")
    enabled: bool
    organizations: list[RemoteConfigOrganizationOut]


@rest(response=UserRemoteConfigOut | None)
async def get_user_remote_config(call: Call) -> UserRemoteConfigOut | None:
    found = await organizations.user_remote_config(call.ctx)
    if found is None:
        return None
    return UserRemoteConfigOut(
        organization_id=found.organization.id,
        value=found.value,
        enabled=found.enabled,
        organizations=[
            RemoteConfigOrganizationOut(organization_id=o.id, name=o.name)
            for o in found.organizations
        ],
    )


@rest(body=CreateOrganizationIn, response=OrganizationOut, status=201)
async def create_organization(call: Call) -> OrganizationOut:
    org = await organizations.create_organization(call.ctx, name=call.body.name)
    return await organization_out(call, org)


@rest(response=OrganizationOut)
async def get_organization(call: Call) -> OrganizationOut:
    org = await organizations.require_organization(call.ctx, call.path["orgId"])
    return await organization_out(call, org)


@rest(body=UpdateOrganizationIn, response=OrganizationOut)
async def update_organization(call: Call) -> OrganizationOut:
    org = await organizations.update_organization(
        call.ctx,
        call.path["orgId"],
        name=call.body.name,
        remote_config_enabled=call.body.remote_config_enabled,
        default_remote_config=call.body.default_remote_config,
    )
    return await organization_out(call, org)


@rest(status=204)
async def delete_organization(call: Call) -> None:
    await organizations.delete_organization(call.ctx, call.path["orgId"])


@rest(response=RemoteConfigOut)
async def get_remote_config(call: Call) -> RemoteConfigOut:
    found = await organizations.remote_config(call.ctx, call.path["orgId"])
    return RemoteConfigOut(enabled=found.enabled, value=found.value)
