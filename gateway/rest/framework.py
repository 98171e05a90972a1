"""The REST machinery: declarative endpoints, the contract's envelope, one error mapping."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import WithJsonSchema
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.context import Context
from gateway.db.session import unavailable
from gateway.errors import (
    DatabaseUnavailable,
    DomainError,
    RateLimited,
    ServiceBusy,
    Unauthenticated,
)
from gateway.inputs import (
    INT64_MAX,
    NUL,
    NUL_MESSAGE,
    YEAR_PATTERN,
    nul_path,
    timestamp_in_range,
)
from gateway.jsoncodec import dump_json, load_json
from gateway.ratelimit import RateLimiter
from gateway.timestamps import format_datetime
from resolvers.pagination import PageArgs, decode_cursor

log = logging.getLogger("gateway.rest")

# RFC 3339 UTC with microseconds and `Z` (CONTRACT.md "Casing"), e.g. 2025-12-01T22:34:35.355099Z.
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"
Timestamp = Annotated[
    datetime,
    PlainSerializer(format_datetime, return_type=str),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN},
        mode="serialization",
    ),
]


class Wire(BaseModel):
    """A body on the wire: camelCase names, unknown request fields ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        # Responses always carry every field, so OpenAPI lists them all as required.
        json_schema_serialization_defaults_required=True,
    )


class WireIn(Wire):
    """A request body: JSON's own types only (CONTRACT.md "Units"): `"true"` or `1` is no
    boolean, `"5"` or `5.0` no integer. Timestamps (`Instant`) are the one exception: strings."""

    model_config = ConfigDict(strict=True)


# Integer bounds of what a column holds (BigInteger) and of the domain: every integer of a
# request body has bounds inside 64 bits, these or narrower (tests/test_hostile_input.py checks
# the route table).
NonNegativeInt64 = Annotated[int, Field(ge=0, le=INT64_MAX)]
PositiveInt64 = Annotated[int, Field(ge=1, le=INT64_MAX)]


# An RFC 3339 timestamp in a request: with a timezone, in the range all later arithmetic
# survives (`gateway.inputs`), converted to UTC.
Instant = Annotated[
    datetime,
    Field(strict=False),
    AfterValidator(timestamp_in_range),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "pattern": YEAR_PATTERN}, mode="validation"
    ),
]


def from_settings(**keywords: str) -> dict[str, Any]:
    """`json_schema_extra` for a bound that is a setting: OpenAPI keyword → Settings attribute
    (`minimum="checkout_min_cents"`), filled in by `build_openapi` from the running settings,
    so the document states the limit this server enforces."""
    return {SETTINGS_KEY: keywords}


SETTINGS_KEY = "x-gateway-settings"

# The longest cursor this API hands out is far shorter (an id, base64-encoded).
MAX_CURSOR = 200


class PageQuery(Wire):
    """`?limit=&cursor=` of every list route (CONTRACT.md "Lists")."""

    limit: int | None = Field(default=None, ge=1, le=100, description="Page size (default 50)")
    cursor: str | None = Field(
        default=None,
        max_length=MAX_CURSOR,
        description="`nextCursor` of the previous page (opaque)",
    )

    def checked_cursor(self) -> str | None:
        """The cursor, checked here so that a bad one is named as the client sent it."""
        if self.cursor:
            decode_cursor(self.cursor, field_name="cursor")
        return self.cursor or None

    def page_size(self, ctx: Context) -> int:
        return min(self.limit or ctx.settings.default_page_size, ctx.settings.max_page_size)

    def page_args(self, ctx: Context) -> PageArgs:
        settings = ctx.settings
        return PageArgs.build(
            first=self.page_size(ctx),
            after=self.checked_cursor(),
            default=settings.default_page_size,
            maximum=settings.max_page_size,
        )

    def backward_page_args(self, ctx: Context) -> PageArgs:
        """The last `limit` items before the cursor: lists stored oldest first, shown newest
        first."""
        settings = ctx.settings
        return PageArgs.build(
            last=self.page_size(ctx),
            before=self.checked_cursor(),
            default=settings.default_page_size,
            maximum=settings.max_page_size,
        )


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
    auth: Literal["user", "service", "none"] = "user"
    # Money-moving POSTs: honour Idempotency-Key (a replay returns the first response).
    idempotent: bool = False


def rest(
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    auth: Literal["user", "service", "none"] = "user",
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
    _segments: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _shape: tuple[bool, ...] = field(init=False, repr=False, compare=False)

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
        segments = tuple(self.path.strip("/").split("/"))
        object.__setattr__(self, "_segments", segments)
        # Which segments are parameters: of two routes that match a path, the one with a
        # literal where the other has a parameter is meant (`/invites/count`, not an invite id).
        object.__setattr__(self, "_shape", tuple(s.startswith("{") for s in segments))

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Path parameters if `raw_path` (still percent-encoded) is this route, else None.

        Segments are decoded one by one, so an encoded id (even one holding `%2F`) is one value.
        """
        return self.match_segments(split_path(raw_path))

    def match_segments(self, segments: list[str]) -> dict[str, str] | None:
        """`match` on a path already split and decoded by `split_path` (once per request)."""
        if len(segments) != len(self._segments):
            return None
        params: dict[str, str] = {}
        for template, value in zip(self._segments, segments, strict=True):
            if template.startswith("{") and template.endswith("}"):
                if not value:
                    return None
                params[template[1:-1]] = value
            elif template != value:
                return None
        return params

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)


def split_path(raw_path: str) -> list[str]:
    """`/a/b%2Fc/` → ["a", "b/c"]: trailing slashes ignored, each segment decoded once."""
    return [unquote(part) for part in raw_path.strip("/").split("/")]


def envelope_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps({"success": False, "error": message}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


@functools.lru_cache(maxsize=512)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _dump(value: Any, annotation: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if annotation is not None and value is not None:
        try:
            adapter = _adapter(annotation)
        except TypeError:  # an unhashable annotation: build it each time
            adapter = TypeAdapter(annotation)
        return adapter.dump_python(value, mode="json", by_alias=True)
    return value


def envelope_ok(status: int, data: Any, annotation: Any = None) -> Response:
    if status == 204:
        return Response(status_code=204)
    return Response(
        dump_json({"success": True, "data": _dump(data, annotation)}),
        status_code=status,
        media_type="application/json",
    )


def _location(loc: tuple[int | str, ...]) -> str:
    """`("events", 1, "credits")` → `events[1].credits`, as the resolvers name fields."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _validation_message(error: ValidationError, where: str) -> str:
    parts = []
    for item in error.errors()[:5]:
        loc = _location(item["loc"]) or where
        parts.append(f"{loc}: {item['msg']}")
    return f"Invalid {where}: " + "; ".join(parts)


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


async def _read_body(request: Request, model: type[BaseModel] | None) -> Any:
    if model is None:  # a route without a body ignores one (the server discards it)
        return None
    raw = await request.body()
    if not raw.strip():
        raw = b"{}"
    elif not _is_json(request):
        raise _HttpError(415, "Request body must be JSON (Content-Type: application/json)")
    try:
        # Exactly as written: orjson alone would turn an integer beyond 64 bits (e.g. in usage
        # metadata) into a float.
        parsed = load_json(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise _HttpError(400, f"Request body is not valid JSON ({exc})") from exc
    if not isinstance(parsed, dict):
        raise _HttpError(400, "Request body must be a JSON object")
    where = nul_path(parsed)
    if where is not None:
        raise _HttpError(400, f"Invalid request body: {where} {NUL_MESSAGE}")
    try:
        return model.model_validate(parsed)
    except ValidationError as exc:
        raise _HttpError(400, _validation_message(exc, "request body")) from exc


def _read_query(request: Request, model: type[BaseModel] | None) -> Any:
    if model is None:
        return None
    params = dict(request.query_params) if request.scope.get("query_string") else {}
    where = nul_path(params)
    if where is not None:
        raise _HttpError(400, f"Invalid query parameters: {where} {NUL_MESSAGE}")
    try:
        return model.model_validate(params)
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
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.endpoints = list(endpoints)

        # Endpoints by (segment count, first segment): a request is matched against the few
        # that can match it, in table order (one whose first segment is a param, with all).
        def fits(endpoint: Endpoint, count: int, first: str | None) -> bool:
            head = endpoint._segments[0]
            return len(endpoint._segments) == count and (head == first or head.startswith("{"))

        shapes = {(len(e._segments), e._segments[0]) for e in self.endpoints}
        self._by_shape = {
            shape: [e for e in self.endpoints if fits(e, *shape)]
            for shape in shapes
            if not shape[1].startswith("{")
        }
        self._params_first = {
            count: [e for e in self.endpoints if fits(e, count, None)] for count, _ in shapes
        }
        self.context_factory = context_factory
        self.idempotency = idempotency
        self.rate_limiter = rate_limiter

    def resolve(
        self, method: str, raw_path: str
    ) -> tuple[Endpoint | None, dict[str, str], list[str]]:
        """The endpoint for (method, path), its path parameters, and else the allowed methods."""
        allowed: list[str] = []
        segments = split_path(raw_path)  # once, not once per endpoint
        candidates = self._by_shape.get((len(segments), segments[0]))
        if candidates is None:
            candidates = self._params_first.get(len(segments), [])
        matched = [
            (endpoint, params)
            for endpoint in candidates
            if (params := endpoint.match_segments(segments)) is not None
        ]
        if not matched:
            return None, {}, allowed
        # Only the routes of the most literal shape: a literal segment is never a parameter.
        shape = min(endpoint._shape for endpoint, _ in matched)
        for endpoint, params in matched:
            if endpoint._shape != shape:
                continue
            if endpoint.method == method:
                return endpoint, params, []
            allowed.append(endpoint.method)
        return None, {}, allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self.handle(request, request.method.upper(), _raw_path(scope))
        await response(scope, receive, send)

    async def handle(self, request: Request, method: str, raw_path: str) -> Response:
        lookup = "GET" if method == "HEAD" else method
        endpoint, params, allowed = self.resolve(lookup, raw_path)
        if endpoint is None:
            if allowed:
                methods = set(allowed) | ({"HEAD"} if "GET" in allowed else set())
                allow = ", ".join(sorted(methods))
                return envelope_error(
                    405, f"Method {method} is not allowed here", headers={"Allow": allow}
                )
            return envelope_error(404, "Not found")
        try:
            for name, value in params.items():
                if NUL in value:
                    raise _HttpError(400, f"Invalid path: {name} {NUL_MESSAGE}")
            ctx = await self.context_factory(request)
            request.state.gateway_context = ctx
            # Before the token is refused: callers without a valid one count by address.
            if self.rate_limiter is not None:
                await self.rate_limiter.check(
                    ctx.principal, request.client.host if request.client else None
                )
            if endpoint.auth == "service":
                if ctx.principal is None or not ctx.principal.is_service:
                    raise Unauthenticated("This route needs the service token")
            elif endpoint.auth == "user":
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
                if isinstance(result, Response):
                    return result
                return envelope_ok(endpoint.status, result, endpoint.response)

            if endpoint.idempotent and self.idempotency is not None:
                return await self.idempotency(endpoint, call, run)
            return await run()
        except _HttpError as exc:
            return envelope_error(exc.status, exc.message)
        except RateLimited as exc:
            return envelope_error(exc.status, exc.message, {"Retry-After": str(exc.retry_after)})
        except DomainError as exc:
            await _rollback(request)
            return envelope_error(exc.status, exc.message, _retry_after(exc))
        except Exception as exc:
            await _rollback(request)
            if unavailable(exc):  # the database went away: retry (gateway/db/session.py)
                busy = DatabaseUnavailable()
                return envelope_error(busy.status, busy.message, _retry_after(busy))
            log.exception("unexpected error in %s %s", method, endpoint.path)
            return envelope_error(500, "Internal server error")


def _retry_after(error: DomainError) -> dict[str, str] | None:
    return {"Retry-After": str(error.retry_after)} if isinstance(error, ServiceBusy) else None


def _raw_path(scope: Scope) -> str:
    """The request path below the mount, still percent-encoded (ids may arrive encoded)."""
    root = scope.get("root_path", "")
    app_root = scope.get("app_root_path", "")
    mount = root[len(app_root) :] if app_root and root.startswith(app_root) else root
    raw = scope.get("raw_path")
    if raw:
        path = raw.decode("latin-1").split("?", 1)[0]
        if app_root and path.startswith(quote(app_root)):
            path = path[len(quote(app_root)) :]
        if path.startswith(quote(mount)):
            return path[len(quote(mount)) :] or "/"
    path = scope.get("path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return quote(path) or "/"


async def _rollback(request: Request) -> None:
    ctx = getattr(request.state, "gateway_context", None)
    if ctx is not None and ctx.db.has_session:
        try:
            await ctx.session.rollback()
        except Exception:
            log.exception("rollback failed")
