"""OpenTelemetry traces, on only when an OTLP endpoint is configured: the one module that knows
the SDK and its instrumentations (ASGI, SQLAlchemy, HTTPX).

Off (no `OTEL_EXPORTER_OTLP_ENDPOINT`), nothing of OpenTelemetry is imported or installed:
`tracer()` is None, and the two places that open spans of their own (a GraphQL operation in
schema/engine/prepared.py, a DataLoader batch in resolvers/batching.py) check that and go on.
On, a request is one server span (the ASGI middleware), under it one span per GraphQL operation
and one per loader batch (never one per field), the SQL statements and outgoing HTTPX calls
(Stripe's SDK); the request id in logs and `X-Request-Id` is the trace id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # imported only where tracing is on
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer
    from sqlalchemy.ext.asyncio import AsyncEngine
    from starlette.applications import Starlette

SERVICE_NAME = "account-gateway"
_T = TypeVar("_T")
_R = TypeVar("_R")

# The tracer of the running app, while its tracing is started (one traced app per process).
_tracer: Tracer | None = None


def tracer() -> Tracer | None:
    return _tracer


class Tracing:
    """One app's OpenTelemetry: its provider, and the instrumentations it installs at
    `start` and removes at `stop`."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._instrumented = False

    @classmethod
    def for_endpoint(cls, endpoint: str | None) -> Tracing | None:
        """Spans exported in batches over OTLP/HTTP to `endpoint` (a collector's base URL,
        as `OTEL_EXPORTER_OTLP_ENDPOINT` names it); None without one."""
        if not endpoint:
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
        return cls.exporting(exporter, batch=BatchSpanProcessor)

    @classmethod
    def exporting(
        cls, exporter: SpanExporter, batch: Callable[[Any], Any] | None = None
    ) -> Tracing:
        """Spans handed to `exporter` (one by one without `batch`: the tests' in-memory one)."""
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
        provider.add_span_processor((batch or SimpleSpanProcessor)(exporter))
        return cls(provider)

    def install_middleware(self, app: Starlette) -> None:
        """A server span per request around the app (its outermost middleware), named by the
        method until the route template is known (`name_request`); no spans per body chunk
        sent or received."""
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        def span_details(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            return str(scope.get("method") or "HTTP"), {}

        app.add_middleware(
            OpenTelemetryMiddleware,
            default_span_details=span_details,
            tracer_provider=self.provider,
            exclude_spans=["receive", "send"],
        )

    def start(self, engine: AsyncEngine) -> None:
        """Spans for the engine's statements and for every HTTPX client's requests."""
        global _tracer
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        # The instrumentation declares SQLAlchemy < 2.1 and would do nothing on 2.1; it only
        # listens to the engine's public cursor events, which 2.1 keeps (and our hot reads
        # dispatch): tests/platform/test_tracing.py sees their spans.
        SQLAlchemyInstrumentor().instrument(
            engine=engine.sync_engine, tracer_provider=self.provider, skip_dep_check=True
        )
        HTTPXClientInstrumentor().instrument(tracer_provider=self.provider)
        self._instrumented = True
        _tracer = self.provider.get_tracer("gateway")

    def stop(self) -> None:
        """The instrumentations removed, and the spans still buffered exported."""
        global _tracer
        if self._instrumented:
            from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
            from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

            SQLAlchemyInstrumentor().uninstrument()
            HTTPXClientInstrumentor().uninstrument()
            self._instrumented = False
        _tracer = None
        self.provider.shutdown()


def current_trace_id() -> str | None:
    """The current trace's id as 32 hex digits (None outside a recorded span)."""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def name_request(method: str, route: str) -> None:
    """The request's server span named by its route template (low cardinality, as the HTTP
    conventions ask), with `http.route`."""
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)


@contextmanager
def operation_span(tracer: Tracer) -> Iterator[Span]:
    """A GraphQL operation's span; its name and attributes are set once the operation is
    known (`name_operation`)."""
    with tracer.start_as_current_span("graphql.operation") as span:
        yield span


def name_operation(span: Span, operation_type: str | None, name: str | None) -> None:
    """As OpenTelemetry's GraphQL conventions: `query GetUser`, `graphql.operation.*`."""
    if operation_type is not None:
        span.update_name(f"{operation_type} {name}" if name else operation_type)
        span.set_attribute("graphql.operation.type", operation_type)
    if name:
        span.set_attribute("graphql.operation.name", name)


def traced_batch(
    tracer: Tracer, name: Callable[[], str], batch: Callable[[list[_T]], Awaitable[_R]]
) -> Callable[[list[_T]], Awaitable[_R]]:
    """A DataLoader's batch function inside a span per call, with the loader's name (read at
    the call: the loader is named once made) and the number of keys."""

    async def traced(keys: list[_T]) -> _R:
        loader = name()
        with tracer.start_as_current_span(f"dataloader {loader}") as span:
            span.set_attribute("dataloader.name", loader)
            span.set_attribute("dataloader.batch_size", len(keys))
            return await batch(keys)

    return traced
