"""GraphQL Member: a user's role in an organization."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from gateway.db import models
from schema.relay import Node

if TYPE_CHECKING:
    from schema.organization import Organization
    from schema.user import User


@strawberry.enum(description="A member's role.")
class Role(enum.Enum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


@strawberry.type
class Member(Node):
    id: strawberry.ID
    role: Role
    created_at: datetime
    updated_at: datetime
    _model: strawberry.Private[models.Member]

    @classmethod
    def from_model(cls, member: models.Member) -> Member:
        return cls(
            id=strawberry.ID(member.id),
            role=Role(member.role),
            created_at=member.created_at,
            updated_at=member.updated_at,
            _model=member,
        )

    @strawberry.field
    def organization_id(self) -> strawberry.ID:
        return strawberry.ID(self._model.organization_id)

    @strawberry.field
    def user_id(self) -> strawberry.ID:
        return strawberry.ID(self._model.user_id)

    @strawberry.field
    async def user(self, info: Info) -> Annotated[User, strawberry.lazy("schema.user")] | None:
        from schema.user import User

        user = await info.context.loaders.user_by_id.load(self._model.user_id)
        return User.from_model(user) if user is not None and user.deleted_at is None else None

    @strawberry.field
    async def organization(
        self, info: Info
    ) -> Annotated[Organization, strawberry.lazy("schema.organization")] | None:
        from schema.organization import Organization

        org = await info.context.loaders.organization_by_id.load(self._model.organization_id)
        return Organization.from_model(org) if org is not None else None
