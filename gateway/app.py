"""The app factory: explicit wiring of GraphQL, REST, webhooks, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import metrics, tracing
from gateway.auth import Authenticator, Principal, open_key_cache, strip_bearer
from gateway.db.engine import create_engine
from gateway.db.session import create_session_factory
from gateway.errors import ServiceBusy, Unauthenticated
from gateway.graphql_http import ClosingContexts, GraphQLApp
from gateway.http_limits import BodySizeLimit
from gateway.logging import configure_logging, request_id_var
from gateway.ratelimit import RateLimiter
from gateway.responses import JsonBody
from gateway.rest.framework import http_error_envelope
from gateway.services import Services, build_services
from gateway.settings import Settings
from gateway.tracing import Tracing
from gateway.web import web_routes
from resolvers import promotions
from resolvers.context import Context
from schema import build_schema

log = logging.getLogger("gateway")


class AppState:
    """Process-wide pieces, created on startup and shared by every request."""

    def __init__(self, settings: Settings, tracing: Tracing | None = None) -> None:
        self.settings = settings
        self.tracing = tracing
        self.engine = create_engine(
            settings.database_url,
            echo=settings.database_echo,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            pool_timeout=settings.database_pool_timeout,
            connect_timeout=settings.database_connect_timeout,
            statement_timeout=settings.database_statement_timeout,
            search_path=settings.database_schema,
            plan_cache_mode=settings.database_plan_cache_mode,
        )
        # Requests take PostgreSQL connections first come, first served, through the pool's
        # gate (gateway/db/pool.py `GatedPool`).
        self.session_factory = create_session_factory(self.engine)
        # Verified API keys, kept for a few seconds (gateway/auth.py `VerifiedKeyCache`).
        self.key_cache = open_key_cache(settings, self.engine)
        self.authenticator = Authenticator(settings, self.key_cache)
        self.services: Services = build_services(settings)
        if tracing is not None:  # the engine's statements and HTTPX calls become spans
            tracing.start(self.engine)
        # Per-caller limits (REST and GraphQL): users' need Redis, shared by all processes;
        # those of callers without a valid token use it when configured (gateway/ratelimit.py).
        per_user = settings.rate_limit_per_minute if settings.redis_url else 0
        self.rate_limiter: RateLimiter | None = (
            RateLimiter.from_url(
                settings.redis_url, per_user, settings.rate_limit_anonymous_per_minute
            )
            if per_user > 0 or settings.rate_limit_anonymous_per_minute > 0
            else None
        )

        # What else the app holds for the process and lets go of with it.
        self.closing: list[Callable[[], Awaitable[None]]] = []

    def new_context(self, request: HTTPConnection | None = None, request_id: str = "") -> Context:
        return Context(
            settings=self.settings,
            session_factory=self.session_factory,
            services=self.services,
            request_id=request_id,
            request=request,
        )

    async def authenticated_context(self, request: HTTPConnection) -> Context:
        """A context for this request; a refused token is kept on it and raised when needed.

        The context is on the request (for `ClosingContexts` to close) before anything can
        fail: authentication already takes the request's connection, which must come back
        whatever happens next (the database gone away in the middle, a rate limit)."""
        ctx = self.new_context(request, request_id_var.get())
        request.state.gateway_context = ctx
        token = strip_bearer(request.headers.get("authorization"))
        if token is not None:
            try:
                ctx.principal = await self.authenticator.authenticate(ctx.db, token)
            except Unauthenticated as exc:
                ctx.auth_error = exc
        elif request.headers.get("authorization"):
            ctx.auth_error = Unauthenticated("Authorization header must be 'Bearer <token>'")
        return ctx

    async def close(self) -> None:
        for close in self.closing:
            await close()
        if self.key_cache is not None:
            await self.key_cache.close()
        if self.rate_limiter is not None:
            await self.rate_limiter.close()
        await self.services.close()
        await self.engine.dispose()
        if self.tracing is not None:
            self.tracing.stop()


async def sweep_promotions(state: AppState, stop: asyncio.Event) -> None:
    """Every GATEWAY_PROMOTION_SWEEP_SECONDS until `stop` is set, expire the promotional
    credits past due of the accounts nobody has read since (a balance read or a redemption
    settles its own account), so that no operator's cron is needed. Safe in every process at
    once: a settlement holds the account's lock and its ledger entry has its own idempotency
    key. Stopping waits for a sweep under way: cancelled mid-statement, it would leave its
    connection busy."""
    interval = state.settings.promotion_sweep_seconds
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        ctx = state.new_context()
        ctx.principal = Principal(user_id=None, via="service")
        try:
            swept = await promotions.expire_due(ctx)
            if swept.accounts:
                log.info(
                    "promotions sweep: %d accounts settled, %d micro-credits expired",
                    swept.accounts,
                    swept.expired,
                )
        except Exception:
            log.exception("the promotions sweep failed; it runs again in %s s", interval)
        finally:
            await ctx.close()


class RequestIdMiddleware:
    """The HTTP edge in one layer, reading the request's headers once: tags every request with
    an id (client's X-Request-Id or a new one; the trace id when tracing is on), logs it and
    observes it for /metrics, labelled with its route template, and holds its body to
    `max_bytes` (gateway/http_limits.py `BodySizeLimit`)."""

    def __init__(self, app: ASGIApp, traced: bool = False, max_bytes: int | None = None) -> None:
        self.app = app
        self.traced = traced
        self.body_limit = BodySizeLimit(max_bytes) if max_bytes is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client_id = content_length = None
        chunked = False
        for name, value in scope.get("headers") or ():
            if name == b"x-request-id":
                client_id = value  # the last one, as a dict of the headers would keep
            elif name == b"content-length":
                if content_length is None:
                    content_length = value
            elif name == b"transfer-encoding":
                chunked = True
        request_id = (tracing.current_trace_id() if self.traced else None) or _request_id(client_id)
        id_header = (b"x-request-id", request_id.encode("latin-1"))
        token = request_id_var.set(request_id)
        labels, labels_token = metrics.start_request()
        started = time.perf_counter()
        status = 500

        method = scope.get("method", "")

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
                if self.traced:  # routed by now; the span ends with the response's last bytes
                    tracing.name_request(
                        method, labels.route or _route_template(scope.get("route"))
                    )
            await send(message)

        try:
            if self.body_limit is None:
                await self.app(scope, receive, send_with_id)
            else:
                await self.body_limit.serve(
                    self.app, scope, receive, send_with_id, content_length, chunked
                )
        finally:
            elapsed = time.perf_counter() - started
            route = labels.route or _route_template(scope.get("route"))
            metrics.observe_request(route, method, labels.operation, status, elapsed)
            log.debug("%s %s %s %.1fms", method, scope.get("path"), status, elapsed * 1000)
            metrics.end_request(labels_token)
            request_id_var.reset(token)


def _request_id(client_id: bytes | None) -> str:
    """The client's X-Request-Id (printable, at most 64 characters), else a new one."""
    incoming = client_id.decode("latin-1")[:64] if client_id else ""
    return incoming if incoming.isprintable() and incoming else _new_request_id()


def _route_template(route: BaseRoute | None) -> str:
    """The template of the app's route that took the request (the REST router names its own
    more precisely: `metrics.name_route`); `other` when none did."""
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    if isinstance(route, Route):
        return route.path
    return metrics.OTHER


# Young-generation collections every 10,000 net container allocations instead of 700: a
# request's rows and objects are freed by reference counting when it ends (they form no
# cycles), so frequent young collections only walked the objects of requests in flight, again
# and again (~5 % of a dashboard's instructions); a collection of 10^4 objects takes ~0.2 ms.
GC_THRESHOLDS = (10_000, 10, 10)


def tune_collector() -> None:
    """At startup: everything built so far (modules, schema, plans' types) lives for the
    process, so it is moved out of the collector's generations (a full collection under load
    then walks the requests' objects only, not ~10^5 long-lived ones); and the thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _new_request_id() -> str:
    """16 hex digits: this process's random prefix and a counter (unique without a system call
    per request; a process started again, or forked, gets a new prefix)."""
    global _REQUEST_IDS
    pid = os.getpid()
    if _REQUEST_IDS is None or _REQUEST_IDS[0] != pid:
        _REQUEST_IDS = (pid, secrets.token_hex(4), itertools.count())
    _, prefix, counter = _REQUEST_IDS
    return f"{prefix}{next(counter) & 0xFFFFFFFF:08x}"


_REQUEST_IDS: tuple[int, str, Iterator[int]] | None = None


def _describe(error: BaseException) -> str:
    """An error and its cause in one line (a failed probe every few seconds: no traceback)."""
    cause = error.__cause__
    text = f"{type(error).__name__}: {error}"
    return f"{text} (from {type(cause).__name__}: {cause})" if cause is not None else text


def create_app(settings: Settings | None = None, *, traces: Tracing | None = None) -> Starlette:
    """The app; `traces` exports its spans (the tests' in-memory exporter), else they go to
    `OTEL_EXPORTER_OTLP_ENDPOINT` when it is set, and nothing is traced without it."""
    from gateway.billing.webhooks import stripe_webhook
    from gateway.mail.worker import running_worker
    from gateway.rest import create_rest_app

    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format)
    metrics.configure(settings.metrics_max_operations)
    traces = traces or Tracing.for_endpoint(settings.otel_exporter_otlp_endpoint)
    schema = build_schema(settings)  # first: a manifest it cannot use leaves nothing open
    state = AppState(settings, traces)
    state.closing.append(schema.close)  # persisted queries' Redis
    graphql = GraphQLApp(
        state,
        schema=schema,
        graphql_ide="graphiql" if settings.exploration(settings.graphiql) else None,
        allow_queries_via_get=True,
    )

    async def healthz(_: Request) -> Response:
        return JsonBody(b'{"status":"ok"}')

    async def readyz(_: Request) -> Response:
        """Ready when a statement runs on a pooled connection within `readiness_timeout`: the
        same gate, pool and database that requests use."""
        try:
            async with asyncio.timeout(settings.readiness_timeout):
                async with state.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception as error:  # a readiness probe reports, never raises
            log.warning("readiness check failed: %s", _describe(error))
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def metrics_page(request: Request) -> Response:
        # Operators' numbers: behind a token when one is set, not served in production without.
        token = settings.metrics_token
        if token is None and settings.environment == "production":
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        if token is not None and not secrets.compare_digest(
            (strip_bearer(request.headers.get("authorization")) or "").encode(),
            token.get_secret_value().encode(),
        ):
            return JSONResponse(
                {"detail": "A bearer token is required"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    async def webhook(request: Request) -> Response:
        try:
            return await stripe_webhook(state, request)
        except ServiceBusy as exc:  # the database is away: Stripe retries later
            return JSONResponse(
                {"success": False, "error": exc.message},
                status_code=exc.status,
                headers={"Retry-After": str(exc.retry_after)},
            )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        tune_collector()
        stop = asyncio.Event()
        sweeper = (
            asyncio.create_task(sweep_promotions(state, stop))
            if settings.promotion_sweep_seconds > 0
            else None
        )
        async with contextlib.AsyncExitStack() as stack:
            if settings.mail_worker_in_serve:
                await stack.enter_async_context(running_worker(settings, state.session_factory))
            yield
            stop.set()
            if sweeper is not None:
                await sweeper
        await state.close()
        metrics.process_exited()

    app = Starlette(
        # The router tries its routes in order, a pattern match each: /graphql first. No two
        # patterns overlap but /api/v1's pages (gateway/web.py) and its mount.
        routes=[
            Route("/graphql", ClosingContexts(graphql), methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_page, methods=["GET"]),
            Route("/webhooks/stripe", webhook, methods=["POST"]),
            *web_routes(settings),  # before /api/v1's mount: its index and docs are pages
            Mount("/api/v1", app=ClosingContexts(create_rest_app(state))),
        ],
        lifespan=lifespan,
        # A path no route takes (one with a newline, which no route pattern matches, included)
        # or a method a route does not serve: the contract's envelope, like /api/v1's own.
        exception_handlers={404: http_error_envelope, 405: http_error_envelope},
    )
    app.state.gateway = state
    app.add_middleware(
        RequestIdMiddleware, traced=traces is not None, max_bytes=settings.max_body_bytes
    )
    if traces is not None:  # outside the request id, which is then the trace's id
        traces.install_middleware(app)
    return app
