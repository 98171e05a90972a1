"""The REST machinery: the route table on Starlette's routes, the contract's envelope, one error
mapping."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from gateway import metrics
from gateway.db.outage import unavailable
from gateway.errors import DatabaseUnavailable, DomainError, Unauthenticated
from gateway.inputs import NUL, NUL_MESSAGE, nul_path
from gateway.jsoncodec import dump_json, load_json
from gateway.ratelimit import RateLimiter
from gateway.responses import JsonBody
from resolvers.context import Context

if TYPE_CHECKING:  # pydantic's own annotation for what TypeAdapter takes (typing_extensions)
    from typing_extensions import TypeForm

log = logging.getLogger("gateway.rest")


@dataclass
class Call:
    """What a handler receives: the context, path parameters and the validated inputs."""

    ctx: Context
    path: dict[str, str]
    # The handler's own `@rest(query=..., body=...)` models, validated (None without one): each
    # handler reads the fields of its models, which this one type cannot name.
    query: Any
    body: Any
    request: Request


Handler = Callable[[Call], Awaitable[object]]


@dataclass(frozen=True, kw_only=True)
class Spec:
    """What a handler takes and gives, declared next to it with `@rest(...)`."""

    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: TypeForm[object] | None = None  # what pydantic serializes the result as
    status: int = 200
    auth: Literal["user", "service", "none"] = "user"
    # Money-moving POSTs: honour Idempotency-Key (a replay returns the first response).
    idempotent: bool = False


def rest(
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: TypeForm[object] | None = None,
    status: int = 200,
    auth: Literal["user", "service", "none"] = "user",
    idempotent: bool = False,
) -> Callable[[Handler], Handler]:
    spec = Spec(
        body=body, query=query, response=response, status=status, auth=auth, idempotent=idempotent
    )

    def mark(handler: Handler) -> Handler:
        handler.__rest__ = spec  # type: ignore[attr-defined]
        return handler

    return mark


@dataclass(frozen=True)
class Endpoint(Spec):
    """One row of the route table: method, path, handler, the summary shown in OpenAPI, and the
    handler's `@rest` declaration."""

    method: str
    path: str
    handler: Handler
    summary: str

    def __post_init__(self) -> None:
        declared: Spec = getattr(self.handler, "__rest__", Spec())
        for spec_field in fields(Spec):
            object.__setattr__(self, spec_field.name, getattr(declared, spec_field.name))

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)


def routing_path(raw_path: str) -> str:
    """`/a/b%2Fc/` → `/a/b%2Fc`: trailing slashes ignored, each segment in one canonical encoding
    (decoded, then encoded again), so a literal segment matches however the client encoded it."""
    path = raw_path.strip("/")
    if _CANONICAL.fullmatch(path):  # the usual path: nothing to decode or encode
        return "/" + path
    return "/" + "/".join(quote(unquote(part), safe="") for part in path.split("/"))


# Characters `quote(…, safe="")` leaves as they are, and the slashes between segments.
_CANONICAL = re.compile(r"[A-Za-z0-9_.~/-]*")


def _pattern(path: str) -> str:
    """A table path as a Starlette path: literal segments as `routing_path` writes them."""
    parts = path.strip("/").split("/")
    return "/" + "/".join(p if p.startswith("{") else quote(p, safe="") for p in parts)


def _literal_first(path: str) -> tuple[bool, ...]:
    """Which segments are parameters: of two routes that match a path, the one with a literal
    where the other has a parameter is meant (`/invites/count`, not an invite id)."""
    return tuple(part.startswith("{") for part in path.strip("/").split("/"))


def _bucket(path: str) -> tuple[int, str | None]:
    """A path's number of segments and its first one, None for a parameter."""
    segments = path.strip("/").split("/")
    return len(segments), None if segments[0].startswith("{") else segments[0]


def envelope_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    return JsonBody(orjson.dumps({"success": False, "error": message}), status, raw)


@functools.lru_cache(maxsize=512)
def _adapter(annotation: TypeForm[object]) -> TypeAdapter[object]:
    return TypeAdapter(annotation)


def _dump(value: object, annotation: TypeForm[object] | None) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if annotation is not None and value is not None:
        try:
            adapter = _adapter(annotation)  # type: ignore[arg-type]  # not always hashable
        except TypeError:  # an unhashable annotation: build it each time
            adapter = TypeAdapter(annotation)
        return adapter.dump_python(value, mode="json", by_alias=True)
    return value


def envelope_ok(status: int, data: object, annotation: TypeForm[object] | None = None) -> Response:
    if status == 204:
        return Response(status_code=204)
    return JsonBody(dump_json({"success": True, "data": _dump(data, annotation)}), status)


class BadInput(DomainError):
    """A request the framework refuses before its handler runs (400, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def error_envelope(request: Request, error: Exception, where: str) -> Response:
    """The one mapping of a failure to the contract's envelope: a domain error's status and
    message (with `Retry-After` when it says when to retry), the database going away as 503,
    anything else a 500 without details. The session is rolled back: nothing half-written."""
    await _rollback(request)
    if not isinstance(error, DomainError):
        if not unavailable(error):  # the database went away: retry (gateway/db/outage.py)
            log.exception("unexpected error in %s", where)
            return envelope_error(500, "Internal server error")
        error = DatabaseUnavailable()
    # The client's mistake (4xx) or a busy service (503): one line, no traceback.
    log.log(
        logging.INFO if error.status < 500 else logging.WARNING,
        "rest %s %s: %s",
        error.status,
        where,
        error.message,
    )
    retry_after = getattr(error, "retry_after", None)  # RateLimited, ServiceBusy
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return envelope_error(error.status, error.message, headers)


async def http_error_envelope(_: Request, error: Exception) -> Response:
    """The app's own 404 and 405 (a path no route pattern takes, such as one with a newline, or
    a method a route does not serve) in the contract's envelope, like /api/v1's own."""
    status = getattr(error, "status_code", 500)
    message = "Not found" if status == 404 else "Method not allowed"
    return envelope_error(status, message, getattr(error, "headers", None))


def _location(loc: tuple[int | str, ...]) -> str:
    """`("events", 1, "credits")` → `events[1].credits`, as the resolvers name fields."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _validated(model: type[BaseModel], data: Mapping[str, object], where: str) -> BaseModel:
    nul = nul_path(data)
    if nul is not None:
        raise BadInput(400, f"Invalid {where}: {nul} {NUL_MESSAGE}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        parts = [f"{_location(e['loc']) or where}: {e['msg']}" for e in exc.errors()[:5]]
        raise BadInput(400, f"Invalid {where}: " + "; ".join(parts)) from exc


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


async def _read_body(request: Request, model: type[BaseModel] | None) -> BaseModel | None:
    if model is None:  # a route without a body ignores one (the server discards it)
        return None
    raw = await request.body()
    if not raw.strip():
        raw = b"{}"
    elif not _is_json(request):
        raise BadInput(415, "Request body must be JSON (Content-Type: application/json)")
    try:
        # Exactly as written: orjson alone would turn an integer beyond 64 bits (e.g. in usage
        # metadata) into a float.
        parsed = load_json(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise BadInput(400, f"Request body is not valid JSON ({exc})") from exc
    if not isinstance(parsed, dict):
        raise BadInput(400, "Request body must be a JSON object")
    return _validated(model, parsed, "request body")


def _read_query(request: Request, model: type[BaseModel] | None) -> BaseModel | None:
    if model is None:
        return None
    params = dict(request.query_params) if request.scope.get("query_string") else {}
    return _validated(model, params, "query parameters")


IdempotencyHook = Callable[[Endpoint, Call, Callable[[], Awaitable[Response]]], Awaitable[Response]]


class Resource:
    """The ASGI app of one table path: its endpoints by method (HEAD answered by GET)."""

    def __init__(self, endpoints: Sequence[Endpoint], app: RestApp) -> None:
        self.endpoints = {endpoint.method: endpoint for endpoint in endpoints}
        self.path = endpoints[0].path  # the table's template, which metrics are labelled with
        self.app = app

    def endpoint(self, method: str) -> Endpoint:
        return self.endpoints["GET" if method == "HEAD" else method]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        endpoint = self.endpoint(request.method.upper())
        response = await self.app.handle(request, endpoint, scope["path_params"])
        await response(scope, receive, send)


class RestApp:
    """Dispatches `/api/v1/*` through Starlette routes built from the endpoint table; every answer
    is the contract's envelope."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        context_factory: Callable[[Request], Awaitable[Context]],
        idempotency: IdempotencyHook | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        by_path: dict[str, list[Endpoint]] = {}
        shapes: dict[str, str] = {}
        for endpoint in self.endpoints:
            by_path.setdefault(endpoint.path, []).append(endpoint)
            # Two spellings of one path would be two routes, and only the first would answer.
            shape = re.sub(r"\{\w+\}", "{}", endpoint.path.strip("/"))
            if shapes.setdefault(shape, endpoint.path) != endpoint.path:
                raise ValueError(f"{endpoint.path} and {shapes[shape]} are one path")
        # One route per path with all its methods; the most literal paths first (a stable sort
        # keeps the table's order otherwise), since the first route whose pattern matches decides:
        # Starlette's Router would go on to a later route that takes the method, and so serve
        # `DELETE …/invites/count` as the revocation of an invite named "count".
        self.routes = [
            Route(_pattern(path), Resource(group, self), methods=[e.method for e in group])
            for path, group in sorted(by_path.items(), key=lambda item: _literal_first(item[0]))
        ]
        # The routes that can match a path of n segments starting with a given one (a literal
        # or a parameter): a request tries those few, not the whole table (~60 routes, ~1 µs each).
        buckets = [_bucket(route.path) for route in self.routes]
        self._candidates = {
            key: [
                r
                for r, bucket in zip(self.routes, buckets, strict=True)
                if bucket in (key, (key[0], None))
            ]
            for key in set(buckets) | {(count, None) for count, _ in buckets}
        }
        self.context_factory = context_factory
        self.idempotency = idempotency
        self.rate_limiter = rate_limiter

    def match(self, method: str, raw_path: str) -> tuple[Match, Route | None, Scope]:
        """The first route whose pattern matches the path: FULL if it takes the method,
        PARTIAL if not; its child scope holds the path parameters, each decoded once (an
        encoded id, even one holding `%2F`, is one value)."""
        path = routing_path(raw_path)
        scope = {"type": "http", "path": path, "method": method}
        count, head = _bucket(path)
        candidates = self._candidates.get((count, head)) or self._candidates.get((count, None), [])
        for route in candidates:
            found, child = route.matches(scope)
            if found is not Match.NONE:
                params = child["path_params"]
                child["path_params"] = {name: unquote(value) for name, value in params.items()}
                return found, route, child
        return Match.NONE, None, {}

    def resolve(
        self, method: str, raw_path: str
    ) -> tuple[Endpoint | None, dict[str, str], list[str]]:
        """The endpoint for (method, path), its path parameters, and else the allowed methods."""
        found, route, child = self.match(method, raw_path)
        if route is None:
            return None, {}, []
        resource = route.endpoint
        assert isinstance(resource, Resource)
        if found is Match.PARTIAL:
            return None, {}, list(resource.endpoints)
        return resource.endpoint(method), child["path_params"], []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"].upper()
        found, route, child = self.match(method, _raw_path(scope))
        if route is not None and isinstance(route.endpoint, Resource):
            metrics.name_route(_mount_path(scope) + route.endpoint.path)
        if route is None:
            response = envelope_error(404, "Not found")
        elif found is Match.PARTIAL:
            allow = ", ".join(sorted(route.methods or ()))
            message = f"Method {method} is not allowed here"
            response = envelope_error(405, message, headers={"Allow": allow})
        else:
            scope.update(child)
            # The resource itself, not `route.handle`: that compares the method as sent, and a
            # lowercase `get` would be a 405 where the table serves it.
            await route.endpoint(scope, receive, send)
            return
        await response(scope, receive, send)

    async def handle(
        self, request: Request, endpoint: Endpoint, params: dict[str, str]
    ) -> Response:
        try:
            for name, value in params.items():
                if NUL in value:
                    raise BadInput(400, f"Invalid path: {name} {NUL_MESSAGE}")
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
        except Exception as error:
            return await error_envelope(request, error, f"{request.method} {endpoint.path}")


def _mount_path(scope: Scope) -> str:
    """Where the app is mounted (`/api/v1`), below the server's own root path."""
    root = scope.get("root_path", "")
    app_root = scope.get("app_root_path", "")
    return root[len(app_root) :] if app_root and root.startswith(app_root) else root


def _raw_path(scope: Scope) -> str:
    """The request path below the mount, still percent-encoded (ids may arrive encoded)."""
    root = scope.get("root_path", "")
    app_root = scope.get("app_root_path", "")
    mount = _mount_path(scope)
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
