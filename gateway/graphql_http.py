"""`/graphql` over HTTP: strawberry's ASGI view with a shorter way for the common request (one
JSON POST of one operation), and the contexts closed once the response is sent."""

from __future__ import annotations

import json
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types import ExecutionResult

from gateway.db.session import dialect_name
from gateway.errors import RateLimited, ServiceBusy
from gateway.jsoncodec import dump_json, loads_exactly
from gateway.responses import JsonBody, SubResponse
from gateway.web import graphiql_page
from resolvers.context import Context

if TYPE_CHECKING:
    from gateway.app import AppState

log = logging.getLogger("gateway")


class GraphQLApp(GraphQL[Context, None]):
    """strawberry's ASGI view, with a shorter way for the common request: a JSON POST of one
    operation (`plain_post`).

    The view serves every kind of GraphQL request (the IDE, GET, multipart uploads, batches,
    streamed results; websockets too, but `/graphql` is routed for HTTP only: the schema has
    no subscriptions) and parses the content type of each through the
    `email` package: for `{ __typename }` with authentication that was ~0.3 M of ~1.2 M
    instructions. A POST whose content type is `application/json`, whose `Accept` asks for no
    stream, and whose body is one JSON object with a `query` string is executed here with the
    view's own pieces (`get_context`, `execute_single`, `process_result`, `create_response`),
    in the view's order; any other request, or anything unusual about this one (a body that
    is not JSON, a batch, variables that are not an object), goes through the view as before.
    `tests/graphql/test_graphql_http.py` holds the two ways' answers equal.
    """

    def __init__(self, state: AppState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state
        config = self.schema.config
        # Results that stream (subscriptions, @defer/@stream) are the view's to send.
        self.plain_posts = (
            self.schema.subscription is None
            and not config.enable_experimental_incremental_execution
            and config.batching_config is None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (self.plain_posts and scope["type"] == "http" and scope["method"] == "POST"):
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            operation = await self.plain_post(request)
            if operation is not None:
                response = await self.execute_plain_post(request, operation)
            else:  # the view, on the same request (its body is kept by `Request.body`)
                response = await self.run(request)
        except HTTPException as error:  # as strawberry's __call__ answers them
            response = PlainTextResponse(error.reason, status_code=error.status_code)
        await response(scope, receive, send)

    async def plain_post(self, request: Request) -> GraphQLRequestData | None:
        """The one operation of a plain JSON POST, or None for the view to handle."""
        headers = request.headers
        content_type = headers.get("content-type", "")
        if content_type.partition(";")[0].strip().lower() != "application/json":
            return None
        accept = headers.get("accept", "")
        if "multipart" in accept or "event-stream" in accept:
            return None
        try:
            data = self.decode_json(await request.body())
        except ValueError:
            return None
        if type(data) is not dict:
            if isinstance(data, list):
                return None  # a batch: the view says whether batches are served
            # strawberry's view fails on these (500); a client sent JSON that is no request.
            raise HTTPException(400, "The request body must be a JSON object")
        query, variables, extensions = (
            data.get("query"),
            data.get("variables"),
            data.get("extensions"),
        )
        if not isinstance(variables, dict | None) or not isinstance(extensions, dict | None):
            return None
        # No query: a persisted query's hash in the extensions stands for it (the engine's).
        if type(query) is not str and not (query is None and extensions):
            return None
        return GraphQLRequestData(
            query=query,
            variables=variables,
            operation_name=data.get("operationName"),
            extensions=extensions,
        )

    async def execute_plain_post(self, request: Request, operation: GraphQLRequestData) -> Response:
        """`run` for a plain JSON POST: the same calls, without the parts that serve others."""
        root_value = await self.get_root_value(request)  # type: ignore[func-returns-value]
        sub_response = await self.get_sub_response(request)
        context = await self.get_context(request, response=sub_response)
        result = await self.execute_single(
            request=request,
            request_adapter=self.request_adapter_class(request),
            sub_response=sub_response,
            context=context,
            root_value=root_value,
            request_data=operation,
        )
        response_data = await self.process_result(request=request, result=result)
        if result.errors:
            self._handle_errors(result.errors, response_data)
        return self.create_response(response_data=response_data, sub_response=sub_response)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        """As the view's: an empty response with no status, for resolvers to add to."""
        return SubResponse()

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """As the view's: the JSON with status 200 unless a resolver set another, then the
        sub-response's headers and background task, its headers written once."""
        body = self.encode_json(response_data)
        response = JsonBody(
            body if isinstance(body, bytes) else body.encode(), sub_response.status_code or 200
        )
        response.raw_headers.extend(sub_response.headers.raw)
        response.background = sub_response.background
        return response

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from the gateway's own files (gateway/web.py), not from a CDN."""
        return graphiql_page(request)

    def process_result(
        self, request: Request, result: ExecutionResult
    ) -> Coroutine[Any, Any, GraphQLHTTPResponse]:
        """As the view's (its coroutine, not wrapped in another); a result with a
        `SERVICE_UNAVAILABLE` error (the database away or no connection free in time) also
        tells the client when to retry, as a 503 would."""
        if result.errors and any(
            (error.extensions or {}).get("code") == ServiceBusy.code for error in result.errors
        ):
            ctx = getattr(request.state, "gateway_context", None)
            response = getattr(ctx, "response", None)
            if response is not None:
                response.headers["Retry-After"] = str(ServiceBusy.retry_after)
        return super().process_result(request, result)

    def decode_json(self, data: str | bytes) -> object:
        """strawberry's `json.loads`, with what it let through as a 500 (JSON nested too
        deeply, bytes that are not UTF-8) refused as the view refuses any bad JSON: 400."""
        try:
            return loads_exactly(data)
        except UnicodeDecodeError as error:
            raise json.JSONDecodeError("Request body is not UTF-8", "", 0) from error

    def encode_json(self, data: object) -> str | bytes:
        """Compact, like strawberry's own `json.dumps`, at orjson's speed where it can."""
        return dump_json(data)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        ctx = await self.state.authenticated_context(request)
        ctx.response = response
        # Connections may take their nodes as JSON that PostgreSQL writes, which `encode_json`
        # (orjson) embeds as it is (schema/engine/, `Run.offer`): HTTP responses only (a
        # websocket's messages are written by the standard library's encoder).
        ctx.json_fragments = isinstance(request, Request) and dialect_name(ctx.db) == "postgresql"
        request.state.gateway_context = ctx
        limiter = self.state.rate_limiter
        if limiter is not None:
            await limiter.check(ctx.principal, request.client.host if request.client else None)
        return ctx


class ClosingContexts:
    """Close the request's database session once the wrapped app has answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})
        try:
            await self.app(scope, receive, send)
        except (RateLimited, ServiceBusy) as exc:  # raised before GraphQL execution starts
            retry_after = exc.retry_after
            response = JSONResponse(
                {"errors": [{"message": exc.message, "extensions": {"code": exc.code}}]},
                status_code=exc.status,
                headers={"Retry-After": str(retry_after)},
            )
            await response(scope, receive, send)
        finally:
            ctx = scope["state"].get("gateway_context")
            if ctx is not None:
                await ctx.close()
