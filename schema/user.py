"""GraphQL User: profile, memberships, keys, balance, payments and usage of the viewer."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from gateway.db import models
from resolvers import api_keys, users
from resolvers import payments as billing
from resolvers import usage as metering
from schema import declare
from schema.api_key import ApiKey
from schema.errors import Payload, mutation
from schema.payment import (
    Payment,
    user_active_account,
    user_balance,
    user_billing_account,
)
from schema.plan import user_subscription
from schema.relay import Node, connection
from schema.rows import FromReaders, stored_fields
from schema.usage import Usage

if TYPE_CHECKING:
    from schema.member import Member
    from schema.organization import Organization


# The personal account's fields refuse an organization's API key, as REST's /users/{id} routes do.
_PERSONAL = " FORBIDDEN through an organization's API key."


@strawberry.type
class User(Node, FromReaders[models.User]):
    id: strawberry.ID
    email: str
    display_name: str
    photo_url: str
    terms_accepted_at: datetime | None
    created_at: datetime
    updated_at: datetime
    _model: strawberry.Private[models.User]

    @classmethod
    def unless_deleted(cls, user: models.User | None) -> User | None:
        """The user a relation field shows: null for no row and for a deleted user."""
        return cls.from_model(user) if user is not None and user.deleted_at is None else None

    @strawberry.field(description="The user's memberships, with role, in live organizations.")
    async def organizations(
        self, info: Info
    ) -> list[Annotated[Member, strawberry.lazy("schema.member")]]:
        from schema.member import Member

        found = await users.memberships(info.context, self._model.id)
        return [Member.from_model(m.member) for m in found]

    @strawberry.field(description="The organization usage is billed to; null for personal.")
    async def active_organization(
        self, info: Info
    ) -> Annotated[Organization, strawberry.lazy("schema.organization")] | None:
        from schema.organization import Organization

        org = await users.active_organization(info.context, self._model)
        return Organization.from_model(org) if org is not None else None

    api_keys = connection(
        ApiKey,
        api_keys.user_api_keys,
        count=api_keys.user_api_key_count,
        nullable=True,
        description="Your live API keys, newest first; null on other users.",
    )
    usages = connection(
        Usage,
        metering.visible_user_usages,
        nullable=True,
        description=f"Your usage, newest first; null on other users.{_PERSONAL}",
    )
    active_account = strawberry.field(
        resolver=user_active_account,
        description="Where your usage is billed (see switchActiveAccount); null on other users.",
    )
    balance = strawberry.field(
        resolver=user_balance, description=f"Your personal balance; null on other users.{_PERSONAL}"
    )
    payments = connection(
        Payment,
        billing.personal_payments_page,
        count=billing.personal_payment_count,
        nullable=True,
        description=f"Your personal payments, newest first; null on other users.{_PERSONAL}",
    )
    billing_account = strawberry.field(
        resolver=user_billing_account,
        description=(f"Your personal billing account's settings; null on other users.{_PERSONAL}"),
    )
    subscription = strawberry.field(
        resolver=user_subscription,
        description=(
            f"Your individual plan subscription; null if none or on other users.{_PERSONAL}"
        ),
    )


# Every stored field of User is its row's attribute of the same name, unconverted.
User.readers = declare.RecordReaders([(name, name, None) for name in stored_fields(User)])
# With its model: a node's user (`Usage.user`, `Member.user`, declared `ToOne`) may be written
# inside the node's JSON. Its other fields are resolvers that read the whole row.
declare.node_type("User", User.readers, always=("id",), others={}, model=models.User)


@strawberry.type
class UserQuery:
    @strawberry.field(description="The authenticated user.")
    async def viewer(self, info: Info) -> User:
        return User.from_model(await users.viewer_profile(info.context))

    @strawberry.field(description="A user you may see: yourself or someone in your organizations.")
    async def user(self, info: Info, id: strawberry.ID) -> User | None:
        found = await users.get_user(info.context, str(id))
        return User.from_model(found) if found is not None else None


@strawberry.input
class UpdateProfileInput:
    display_name: str | None = None
    photo_url: str | None = None


@strawberry.type
class UserPayload(Payload):
    user: User | None = None


@strawberry.input
class SwitchActiveAccountInput:
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="null for the personal account"
    )


@strawberry.type
class DeleteAccountPayload(Payload):
    deleted_user_id: strawberry.ID | None = None


@strawberry.type
class UserMutation:
    @mutation()
    async def update_profile(self, info: Info, input: UpdateProfileInput) -> UserPayload:
        user = await users.update_profile(
            info.context, display_name=input.display_name, photo_url=input.photo_url
        )
        return UserPayload(user=User.from_model(user))

    @mutation("Accept the terms; keeps the first acceptance time.")
    async def accept_terms(self, info: Info) -> UserPayload:
        return UserPayload(user=User.from_model(await users.accept_terms(info.context)))

    @mutation("Bill usage to an organization, or null for personal.")
    async def switch_active_account(
        self, info: Info, input: SwitchActiveAccountInput
    ) -> UserPayload:
        org_id = str(input.organization_id) if input.organization_id else None
        user = await users.switch_active_account(info.context, org_id)
        return UserPayload(user=User.from_model(user))

    @mutation("Delete your account (payments and usage stay on record).")
    async def delete_account(self, info: Info) -> DeleteAccountPayload:
        user_id = info.context.user_id
        await users.delete_account(info.context)
        return DeleteAccountPayload(deleted_user_id=strawberry.ID(user_id))
