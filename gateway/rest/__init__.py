"""REST /api/v1: the compatibility layer over the same resolvers as GraphQL (CONTRACT.md)."""

from __future__ import annotations

from typing import Protocol

import orjson
from starlette.requests import HTTPConnection
from starlette.responses import Response

from gateway.ratelimit import RateLimiter
from gateway.rest.framework import Call, Endpoint, RestApp, rest
from gateway.rest.idempotency import idempotency_hook
from gateway.rest.openapi import build_openapi
from gateway.rest.routes import ENDPOINTS
from gateway.settings import Settings
from resolvers.context import Context


class RestState(Protocol):
    """What the REST app takes of the app's state (gateway/app.py `AppState`)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def rate_limiter(self) -> RateLimiter | None: ...
    async def authenticated_context(self, request: HTTPConnection) -> Context: ...


def create_rest_app(state: RestState) -> RestApp:
    document: list[bytes] = []

    @rest(auth="none")
    async def openapi_json(call: Call) -> Response:
        """This document (no authentication needed)."""
        if not document:
            document.append(orjson.dumps(build_openapi(endpoints, settings=state.settings)))
        return Response(document[0], media_type="application/json")

    endpoints = [
        *ENDPOINTS,
        Endpoint("GET", "/openapi.json", openapi_json, "The OpenAPI 3.1 document of this API"),
    ]
    return RestApp(
        endpoints,
        state.authenticated_context,
        idempotency=idempotency_hook,
        rate_limiter=state.rate_limiter,
    )
