"""The REST machinery: declarative endpoints, the contract's envelope, one error mapping."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import orjson
from pydantic import BaseModel, ConfigDict, PlainSerializer, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.context import Context
from gateway.errors import DomainError, RateLimited, Unauthenticated
from schema.scalars import format_datetime

log = logging.getLogger("gateway.rest")

Timestamp = Annotated[datetime, PlainSerializer(format_datetime, return_type=str)]


class Wire(BaseModel):
    """A body on the wire: camelCase names, unknown request fields ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


@dataclass
class Call:
    """What a handler receives: the context, path parameters and the validated inputs."""

    ctx: Context
    path: dict[str, str]
    query: Any
    body: Any
    request: Request


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Spec:
    """What a handler takes and gives, declared next to it with `@rest(...)`."""

    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    auth: Literal["user", "service"] = "user"
    # Money-moving POSTs: honour Idempotency-Key (a replay returns the first response).
    idempotent: bool = False


def rest(
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    auth: Literal["user", "service"] = "user",
    idempotent: bool = False,
) -> Callable[[Handler], Handler]:
    spec = Spec(body, query, response, status, auth, idempotent)

    def mark(handler: Handler) -> Handler:
        handler.__rest__ = spec  # type: ignore[attr-defined]
        return handler

    return mark


@dataclass(frozen=True)
class Endpoint:
    """One row of the route table: method, path, handler, and the summary shown in OpenAPI."""

    method: str
    path: str
    handler: Handler
    summary: str
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    @property
    def spec(self) -> Spec:
        spec: Spec = getattr(self.handler, "__rest__", Spec())
        return spec

    @property
    def body(self) -> type[BaseModel] | None:
        return self.spec.body

    @property
    def query(self) -> type[BaseModel] | None:
        return self.spec.query

    @property
    def response(self) -> Any:
        return self.spec.response

    @property
    def status(self) -> int:
        return self.spec.status

    @property
    def auth(self) -> str:
        return self.spec.auth

    @property
    def idempotent(self) -> bool:
        return self.spec.idempotent

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path)
        object.__setattr__(self, "_pattern", re.compile(f"^{regex}$"))

    def match(self, path: str) -> dict[str, str] | None:
        found = self._pattern.match(path)
        if found is None:
            return None
        return {k: unquote(v) for k, v in found.groupdict().items()}

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)


def envelope_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps({"success": False, "error": message}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _dump(value: Any, annotation: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if annotation is not None and value is not None:
        return TypeAdapter(annotation).dump_python(value, mode="json", by_alias=True)
    return value


def envelope_ok(status: int, data: Any, annotation: Any = None) -> Response:
    if status == 204:
        return Response(status_code=204)
    return Response(
        orjson.dumps({"success": True, "data": _dump(data, annotation)}),
        status_code=status,
        media_type="application/json",
    )


def _validation_message(error: ValidationError, where: str) -> str:
    parts = []
    for item in error.errors()[:5]:
        loc = ".".join(str(p) for p in item["loc"]) or where
        parts.append(f"{loc}: {item['msg']}")
    return f"Invalid {where}: " + "; ".join(parts)


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


async def _read_body(request: Request, model: type[BaseModel] | None) -> Any:
    raw = await request.body()
    if model is None:
        return None
    if not raw.strip():
        raw = b"{}"
    elif not _is_json(request):
        raise _HttpError(415, "Request body must be JSON (Content-Type: application/json)")
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _HttpError(400, "Request body is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise _HttpError(400, "Request body must be a JSON object")
    try:
        return model.model_validate(parsed)
    except ValidationError as exc:
        raise _HttpError(400, _validation_message(exc, "request body")) from exc


def _read_query(request: Request, model: type[BaseModel] | None) -> Any:
    if model is None:
        return None
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise _HttpError(400, _validation_message(exc, "query parameters")) from exc


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


IdempotencyHook = Callable[[Endpoint, Call, Callable[[], Awaitable[Response]]], Awaitable[Response]]


class RestApp:
    """Dispatches `/api/v1/*` to the endpoint table; every answer is the contract's envelope."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        context_factory: Callable[[Request], Awaitable[Context]],
        idempotency: IdempotencyHook | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self.context_factory = context_factory
        self.idempotency = idempotency

    def resolve(self, method: str, path: str) -> tuple[Endpoint | None, dict[str, str], list[str]]:
        allowed: list[str] = []
        for endpoint in self.endpoints:
            params = endpoint.match(path)
            if params is None:
                continue
            if endpoint.method == method:
                return endpoint, params, []
            allowed.append(endpoint.method)
        return None, {}, allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        path = path.rstrip("/") or "/"
        response = await self.handle(request, request.method.upper(), path)
        await response(scope, receive, send)

    async def handle(self, request: Request, method: str, path: str) -> Response:
        endpoint, params, allowed = self.resolve(method, path)
        if endpoint is None:
            if method == "HEAD":
                endpoint, params, allowed = self.resolve("GET", path)
            if endpoint is None:
                if allowed:
                    allow = ", ".join(sorted(set(allowed)))
                    return envelope_error(
                        405, f"Method {method} is not allowed here", headers={"Allow": allow}
                    )
                return envelope_error(404, "Not found")
        try:
            ctx = await self.context_factory(request)
            request.state.gateway_context = ctx
            if endpoint.auth == "service":
                if ctx.principal is None or not ctx.principal.is_service:
                    raise Unauthenticated("This route needs the service token")
            else:
                ctx.user_id  # noqa: B018  (raises Unauthenticated without a user token)
            call = Call(
                ctx=ctx,
                path=params,
                query=_read_query(request, endpoint.query),
                body=await _read_body(request, endpoint.body),
                request=request,
            )

            async def run() -> Response:
                result = await endpoint.handler(call)
                return envelope_ok(endpoint.status, result, endpoint.response)

            if endpoint.idempotent and self.idempotency is not None:
                return await self.idempotency(endpoint, call, run)
            return await run()
        except _HttpError as exc:
            return envelope_error(exc.status, exc.message)
        except RateLimited as exc:
            return envelope_error(exc.status, exc.message, {"Retry-After": str(exc.retry_after)})
        except DomainError as exc:
            ctx_obj = getattr(request.state, "gateway_context", None)
            if ctx_obj is not None and ctx_obj._session is not None:
                await ctx_obj.session.rollback()
            return envelope_error(exc.status, exc.message)
        except Exception:
            log.exception("unexpected error in %s %s", method, endpoint.path)
            return envelope_error(500, "Internal server error")
