"""GraphQL Organization: settings, members, remote config."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from gateway.db import models
from resolvers import organizations
from schema.member import Member
from schema.relay import Connection, Node, page_args


@strawberry.type
class Organization(Node):
    id: strawberry.ID
    name: str
    remote_config_enabled: bool
    default_remote_config: str
    external_organization_id: str | None
    created_at: datetime
    updated_at: datetime
    _model: strawberry.Private[models.Organization]

    @classmethod
    def from_model(cls, org: models.Organization) -> Organization:
        return cls(
            id=strawberry.ID(org.id),
            name=org.name,
            remote_config_enabled=org.remote_config_enabled,
            default_remote_config=org.default_remote_config,
            external_organization_id=org.external_organization_id,
            created_at=org.created_at,
            updated_at=org.updated_at,
            _model=org,
        )

    @strawberry.field
    async def member_count(self, info: Info) -> int:
        return int(await info.context.loaders.member_count_by_organization_id.load(self._model.id))

    @strawberry.field(description="Members, oldest first.")
    async def members(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Member]:
        args = page_args(info, first, after, last, before)
        page = await organizations.members_page(info.context, self._model.id, args)
        loaders = info.context.loaders
        return Connection.from_page(
            page,
            Member.from_model,
            lambda: loaders.member_count_by_organization_id.load(self._model.id),
        )


@strawberry.type
class OrganizationQuery:
    @strawberry.field(description="An organization you are a member of.")
    async def organization(self, info: Info, id: strawberry.ID) -> Organization | None:
        org = await organizations.get_organization(info.context, str(id))
        return Organization.from_model(org) if org is not None else None
