"""GraphQL ApiKey: a user's (or an organization's) API keys; the secret is shown once."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from gateway.db import models
from resolvers import api_keys
from schema import declare
from schema.errors import Payload, mutation
from schema.relay import Node
from schema.rows import FromReaders


@strawberry.type(description="An API key; its secret is only shown by createApiKey.")
class ApiKey(Node, FromReaders[models.ApiKey]):
    id: strawberry.ID
    name: str
    prefix: str = strawberry.field(description="The first characters of the key, to recognise it.")
    organization_id: strawberry.ID | None = strawberry.field(
        description="Set for an organization key, which only reaches that organization."
    )
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    _model: strawberry.Private[models.ApiKey]


def _organization_id(value: str | None) -> str | None:
    return value or None  # an empty string is no organization


ApiKey.readers = declare.RecordReaders(
    [
        *((name, name, None) for name in ("id", "name", "prefix")),
        # A conversion: a selection with `organizationId` stays on the object path.
        ("organization_id", "organization_id", _organization_id),
        *((name, name, None) for name in ("created_at", "last_used_at", "expires_at")),
    ]
)
# What each ApiKey field reads of its row (schema/declare.py); no field has a resolver.
declare.node_type("ApiKey", ApiKey.readers, always=("id",), others={}, model=models.ApiKey)


@strawberry.input
class CreateApiKeyInput:
    name: str = strawberry.field(description="1 to 200 characters.")
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="Make an organization key (needs owner or admin)."
    )
    expires_at: datetime | None = strawberry.field(
        default=None, description="When the key stops working; must be in the future."
    )


@strawberry.type
class CreateApiKeyPayload(Payload):
    api_key: ApiKey | None = None
    key: str | None = strawberry.field(
        default=None, description="The secret: shown only here, store it now."
    )


@strawberry.input
class DeleteApiKeyInput:
    id: strawberry.ID


@strawberry.type
class DeleteApiKeyPayload(Payload):
    deleted_api_key_id: strawberry.ID | None = None


@strawberry.type
class ApiKeyMutation:
    @mutation("Create an API key for yourself or an organization.")
    async def create_api_key(self, info: Info, input: CreateApiKeyInput) -> CreateApiKeyPayload:
        created = await api_keys.create_api_key(
            info.context,
            name=input.name,
            organization_id=str(input.organization_id) if input.organization_id else None,
            expires_at=input.expires_at,
        )
        return CreateApiKeyPayload(api_key=ApiKey.from_model(created.api_key), key=created.secret)

    @mutation("Revoke one of your API keys; it stops working at once.")
    async def delete_api_key(self, info: Info, input: DeleteApiKeyInput) -> DeleteApiKeyPayload:
        key_id = await api_keys.delete_api_key(info.context, str(input.id))
        return DeleteApiKeyPayload(deleted_api_key_id=strawberry.ID(key_id))
