"""GraphQL User: profile, memberships, keys, balance, payments and usage of the viewer."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.types import Info

from gateway.db import models
from resolvers import api_keys, users
from schema import declare
from schema.api_key import ApiKey
from schema.errors import UserError, run_mutation
from schema.payment import (
    user_active_account,
    user_balance,
    user_billing_account,
    user_payments,
)
from schema.plan import user_subscription
from schema.relay import Connection, Node, page_args
from schema.usage import user_usages

if TYPE_CHECKING:
    from schema.member import Member
    from schema.organization import Organization


# The personal account's fields refuse an organization's API key, as REST's /users/{id} routes do.
_PERSONAL = " FORBIDDEN through an organization's API key."


@strawberry.type
class User(Node):
    id: strawberry.ID
    email: str
    display_name: str
    photo_url: str
    terms_accepted_at: datetime | None
    created_at: datetime
    updated_at: datetime
    _model: strawberry.Private[models.User]

    @classmethod
    def from_model(cls, user: models.User | Any) -> User:
        """From an ORM user or a read-only row, without the dataclass `__init__` (a members
        page shows one per member; held equal to the constructor by a test)."""
        found = cls.__new__(cls)
        found.__dict__ = _USER_READERS[type(user)](user)
        return found

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

    @strawberry.field(description="Your live API keys, newest first; null on other users.")
    async def api_keys(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[ApiKey] | None:
        args = page_args(info, first, after, last, before)
        user_id = self._model.id
        page = await api_keys.user_api_keys(info.context, user_id, args)
        if page is None:
            return None

        async def count() -> int:
            return await api_keys.user_api_key_count(info.context, user_id) or 0

        return Connection.from_page(page, ApiKey.from_model, count)

    usages = strawberry.field(
        resolver=user_usages,
        description=f"Your usage, newest first; null on other users.{_PERSONAL}",
    )
    active_account = strawberry.field(
        resolver=user_active_account,
        description="Where your usage is billed (see switchActiveAccount); null on other users.",
    )
    balance = strawberry.field(
        resolver=user_balance, description=f"Your personal balance; null on other users.{_PERSONAL}"
    )
    payments = strawberry.field(
        resolver=user_payments,
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


_USER_READERS = declare.RecordReaders(
    [
        (name, name, None)
        for name in (
            "id",
            "email",
            "display_name",
            "photo_url",
            "terms_accepted_at",
            "created_at",
            "updated_at",
        )
    ]
)


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
class UserPayload:
    errors: list[UserError]
    user: User | None = None


@strawberry.input
class SwitchActiveAccountInput:
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="null for the personal account"
    )


@strawberry.type
class DeleteAccountPayload:
    errors: list[UserError]
    deleted_user_id: strawberry.ID | None = None


@strawberry.type
class UserMutation:
    @strawberry.mutation
    async def update_profile(self, info: Info, input: UpdateProfileInput) -> UserPayload:
        async def action() -> dict[str, object]:
            user = await users.update_profile(
                info.context, display_name=input.display_name, photo_url=input.photo_url
            )
            return {"user": User.from_model(user)}

        return await run_mutation(info, UserPayload, action)

    @strawberry.mutation(description="Accept the terms; keeps the first acceptance time.")
    async def accept_terms(self, info: Info) -> UserPayload:
        async def action() -> dict[str, object]:
            return {"user": User.from_model(await users.accept_terms(info.context))}

        return await run_mutation(info, UserPayload, action)

    @strawberry.mutation(description="Bill usage to an organization, or null for personal.")
    async def switch_active_account(
        self, info: Info, input: SwitchActiveAccountInput
    ) -> UserPayload:
        async def action() -> dict[str, object]:
            org_id = str(input.organization_id) if input.organization_id else None
            return {
                "user": User.from_model(await users.switch_active_account(info.context, org_id))
            }

        return await run_mutation(info, UserPayload, action)

    @strawberry.mutation(description="Delete your account (payments and usage stay on record).")
    async def delete_account(self, info: Info) -> DeleteAccountPayload:
        async def action() -> dict[str, object]:
            user_id = info.context.user_id
            await users.delete_account(info.context)
            return {"deleted_user_id": strawberry.ID(user_id)}

        return await run_mutation(info, DeleteAccountPayload, action)
