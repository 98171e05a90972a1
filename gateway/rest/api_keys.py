"""REST handlers for API keys."""

from __future__ import annotations

from pydantic import Field

from gateway.rest.framework import Call, rest
from gateway.rest.wire import Instant, Out, PageQuery, Timestamp, WireIn
from resolvers import api_keys, permissions


class ApiKeyOut(Out):
    id: str
    name: str
    prefix: str = Field(description="The first characters of the key, to recognise it")
    organization_id: str | None
    created_at: Timestamp
    last_used_at: Timestamp | None
    expires_at: Timestamp | None


class CreatedApiKeyOut(ApiKeyOut):
    key: str = Field(description="The secret: shown only in this response")


class ApiKeyListOut(Out):
    items: list[ApiKeyOut]
    next_cursor: str | None


class OrganizationApiKeysOut(ApiKeyListOut):
    provider_api_keys: str = Field(
        description="JSON object, encoded as a string, mapping provider name to key"
    )


class CreateApiKeyIn(WireIn):
    name: str = Field(min_length=1, max_length=api_keys.MAX_NAME)
    organization_id: str | None = Field(default=None, max_length=30)
    expires_at: Instant | None = None


@rest(query=PageQuery, response=OrganizationApiKeysOut)
async def list_organization_api_keys(call: Call) -> OrganizationApiKeysOut:
    args = call.query.page_args(call.ctx)
    access = await permissions.member_access(call.ctx, call.path["orgId"])
    page = await api_keys.organization_api_keys(call.ctx, access, args)
    return OrganizationApiKeysOut.of(page, provider_api_keys=api_keys.provider_api_keys(access))


@rest(query=PageQuery, response=ApiKeyListOut)
async def list_api_keys(call: Call) -> ApiKeyListOut:
    return ApiKeyListOut.of(await api_keys.my_api_keys(call.ctx, call.query.page_args(call.ctx)))


@rest(body=CreateApiKeyIn, response=CreatedApiKeyOut, status=201)
async def create_api_key(call: Call) -> CreatedApiKeyOut:
    created = await api_keys.create_api_key(
        call.ctx,
        name=call.body.name,
        organization_id=call.body.organization_id,
        expires_at=call.body.expires_at,
    )
    return CreatedApiKeyOut.of(created.api_key, key=created.secret)


@rest(status=204)
async def delete_api_key(call: Call) -> None:
    await api_keys.delete_api_key(call.ctx, call.path["keyId"])
