"""GraphQL Organization: settings, members, invites, remote config."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from gateway.db import models
from resolvers import api_keys, invites, members, organizations, permissions, plans
from resolvers import payments as billing
from resolvers import usage as metering
from schema import declare
from schema.api_key import ApiKey
from schema.errors import Payload, mutation
from schema.invite import Invite
from schema.member import Member, Role
from schema.payment import (
    Payment,
    organization_balance,
    organization_billing_account,
)
from schema.plan import PlanHistoryEntry, organization_subscription
from schema.relay import Node, connection
from schema.rows import FromReaders, stored_fields
from schema.usage import Usage, organization_metrics, organization_usage_summary


@strawberry.type
class Organization(Node, FromReaders[models.Organization]):
    id: strawberry.ID
    name: str
    remote_config_enabled: bool
    default_remote_config: str
    external_organization_id: str | None
    created_at: datetime
    updated_at: datetime
    _model: strawberry.Private[models.Organization]

    @strawberry.field
    @declare.reads_ahead(lambda org_id, info: members.member_count_ahead(info.context, org_id))
    async def member_count(self, info: Info) -> int:
        return await members.member_count(info.context, self._model.id)

    @strawberry.field(description="Your role here; null if you are not a member.")
    async def viewer_role(self, info: Info) -> Role | None:
        role = await members.viewer_role(info.context, self._model.id)
        return Role(role) if role is not None else None

    members = connection(
        Member,
        members.members_page,
        count=members.members_total,
        of=permissions.member_access,
        ahead=members.members_page_ahead,
        count_ahead=members.member_count_ahead,
        description="Members, oldest first.",
    )
    invites = connection(
        Invite,
        invites.invites_page,
        count=invites.invite_count,
        of=permissions.manager_access,
        ahead=invites.invites_page_ahead,
        count_ahead=invites.invite_count_ahead,
        nullable=True,
        description="Pending invites, newest first (owners and admins only).",
    )
    api_keys = connection(
        ApiKey,
        api_keys.organization_api_keys,
        count=api_keys.organization_api_key_count,
        of=permissions.member_access,
        ahead=api_keys.organization_api_keys_ahead,
        count_ahead=api_keys.organization_api_key_count_ahead,
        description="The organization's live API keys, newest first (members).",
    )

    @strawberry.field(
        description="Inference providers' keys for your clients: a JSON object as a string, "
        "mapping provider name to key (members)."
    )
    async def provider_api_keys(self, info: Info) -> str:
        access = await permissions.member_access(info.context, self._model.id)
        return api_keys.provider_api_keys(access)

    usages = connection(
        Usage,
        metering.organization_usages_page,
        of=permissions.manager_access,
        ahead=metering.organization_usages_page_ahead,
        description="Usage billed here, newest first (owner/admin).",
    )
    usage_summary = strawberry.field(
        resolver=organization_usage_summary,
        description="Usage totals per day, model or member over a period (owner/admin).",
    )
    metrics = strawberry.field(
        resolver=organization_metrics,
        description="Requests, tokens, credits, active members, top models (owner/admin).",
    )
    balance = strawberry.field(
        resolver=organization_balance, description="The organization's balance (members)."
    )
    payments = connection(
        Payment,
        billing.organization_payments_page,
        count=billing.organization_payment_count,
        of=permissions.manager_access,
        ahead=billing.organization_payments_page_ahead,
        nullable=True,
        description="The organization's payments, newest first (owners and admins).",
    )
    billing_account = strawberry.field(
        resolver=organization_billing_account,
        description="The organization's billing account settings (owners and admins).",
    )
    subscription = strawberry.field(
        resolver=organization_subscription,
        description="The organization's current plan subscription, or null (members).",
    )
    plan_history = connection(
        PlanHistoryEntry,
        plans.plan_history_page,
        of=permissions.member_access,
        ahead=plans.plan_history_page_ahead,
        description="The organization's plan changes, newest first (members).",
    )


# Every stored field of Organization is its row's attribute of the same name, unconverted: an
# object is one generated dict (schema/declare.py `RecordReaders`), not the constructor's call.
Organization.readers = declare.RecordReaders(
    [(name, name, None) for name in stored_fields(Organization)]
)


@strawberry.type(description="An organization as listed in remote config distribution.")
class RemoteConfigOrganization:
    organization_id: strawberry.ID
    name: str


@strawberry.type(description="The remote config your clients should apply.")
class ViewerRemoteConfig:
    organization_id: strawberry.ID = strawberry.field(
        description="The active (or first) organization distributing config."
    )
    value: str = strawberry.field(description="Its remote config: a JSON object as a string.")
    enabled: bool
    organizations: list[RemoteConfigOrganization] = strawberry.field(
        description="Your organizations that distribute remote config."
    )


@strawberry.type
class OrganizationQuery:
    @strawberry.field(description="An organization you are a member of.")
    @declare.by_id(declare.argument_id("Organization"))
    async def organization(self, info: Info, id: strawberry.ID) -> Organization | None:
        org = await organizations.get_organization(info.context, str(id))
        return Organization.from_model(org) if org is not None else None

    @strawberry.field(
        description="Remote config for your clients; null when none of your organizations "
        "distributes it."
    )
    async def viewer_remote_config(self, info: Info) -> ViewerRemoteConfig | None:
        found = await organizations.user_remote_config(info.context)
        if found is None:
            return None
        return ViewerRemoteConfig(
            organization_id=strawberry.ID(found.organization.id),
            value=found.value,
            enabled=found.enabled,
            organizations=[
                RemoteConfigOrganization(organization_id=strawberry.ID(o.id), name=o.name)
                for o in found.organizations
            ],
        )


@strawberry.input
class CreateOrganizationInput:
    name: str


@strawberry.type
class OrganizationPayload(Payload):
    organization: Organization | None = None


@strawberry.input
class UpdateOrganizationInput:
    organization_id: strawberry.ID
    name: str | None = None
    remote_config_enabled: bool | None = None
    default_remote_config: str | None = strawberry.field(
        default=None, description='A JSON object as a string, with a string "version".'
    )


@strawberry.input
class DeleteOrganizationInput:
    organization_id: strawberry.ID


@strawberry.type
class DeleteOrganizationPayload(Payload):
    deleted_organization_id: strawberry.ID | None = None


@strawberry.input
class UpdateRemoteConfigInput:
    organization_id: strawberry.ID
    enabled: bool
    value: str | None = strawberry.field(
        default=None,
        description='A JSON object as a string, with a string "version"; null keeps the value.',
    )


@strawberry.type
class OrganizationMutation:
    @mutation("Create an organization; you become its owner.")
    async def create_organization(
        self, info: Info, input: CreateOrganizationInput
    ) -> OrganizationPayload:
        org = await organizations.create_organization(info.context, name=input.name)
        return OrganizationPayload(organization=Organization.from_model(org))

    @mutation("Change an organization's settings (owner/admin).")
    async def update_organization(
        self, info: Info, input: UpdateOrganizationInput
    ) -> OrganizationPayload:
        access = await permissions.manager_access(info.context, str(input.organization_id))
        org = await organizations.update_organization(
            access,
            name=input.name,
            remote_config_enabled=input.remote_config_enabled,
            default_remote_config=input.default_remote_config,
        )
        return OrganizationPayload(organization=Organization.from_model(org))

    @mutation("Delete an organization (owner only); its balance is kept.")
    async def delete_organization(
        self, info: Info, input: DeleteOrganizationInput
    ) -> DeleteOrganizationPayload:
        access = await permissions.owner_access(info.context, str(input.organization_id))
        await organizations.delete_organization(access)
        return DeleteOrganizationPayload(deleted_organization_id=input.organization_id)

    @mutation("Turn remote config distribution on or off (owner/admin).")
    async def update_remote_config(
        self, info: Info, input: UpdateRemoteConfigInput
    ) -> OrganizationPayload:
        access = await permissions.manager_access(info.context, str(input.organization_id))
        org = await organizations.update_remote_config(
            access, enabled=input.enabled, value=input.value
        )
        return OrganizationPayload(organization=Organization.from_model(org))
