"""OpenTelemetry traces, exported to the SDK's in-memory exporter: one span per request, per
GraphQL operation (on either executor) and per DataLoader batch, never per field; statements
and outgoing HTTP calls as spans; the request id is the trace id; nothing at all when off."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway import tracing
from gateway.app import RequestIdMiddleware
from gateway.tracing import Tracing
from tests.conftest import BACKENDS, Client, Env, env_settings, running_env

TEAM = """
query Team {
  viewer {
    organizations { organization { name members(first: 10) { nodes { role user { email } } } } }
  }
}
"""


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(params=BACKENDS)
async def traced(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    pg_schema: str | None,
    exporter: InMemorySpanExporter,
) -> AsyncIterator[Env]:
    settings = env_settings(request, tmp_path, sqlite_template, pg_schema)
    truncate = settings if request.param == "postgresql" else None
    async with running_env(settings, truncate=truncate, traces=Tracing.exporting(exporter)) as env:
        yield env


async def team(env: Env, organizations: int) -> Client:
    """A user who owns `organizations` organizations of three members each."""
    owner = await env.user()
    for i in range(organizations):
        org_id = await env.organization(owner, name=f"Org {i}")
        for _ in range(2):
            await env.add_member(org_id, await env.user())
    return owner


def by_scope(spans: tuple[ReadableSpan, ...], scope: str) -> list[ReadableSpan]:
    return [s for s in spans if s.instrumentation_scope and s.instrumentation_scope.name == scope]


def ancestors(span: ReadableSpan, spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    by_id = {s.context.span_id: s for s in spans}
    found = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        found.append(span)
    return found


@pytest.mark.parametrize(
    "executor",
    [
        pytest.param(name, marks=pytest.mark.settings(graphql_executor=name))
        for name in ["compiled", "standard"]
    ],
)
async def test_a_graphql_request_is_one_operation_span_under_the_request_span(
    traced: Env, exporter: InMemorySpanExporter, executor: str
) -> None:
    assert traced.settings.graphql_executor == executor
    owner = await team(traced, 1)
    exporter.clear()
    assert "errors" not in await owner.gql(TEAM)
    spans = exporter.get_finished_spans()
    (operation,) = [s for s in by_scope(spans, "gateway") if s.name.startswith("query")]
    assert operation.name == "query Team"
    assert operation.attributes == {
        "graphql.operation.type": "query",
        "graphql.operation.name": "Team",
    }
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert ancestors(operation, spans) == [server]
    assert server.name == "POST /graphql"


# Each executor on its own: `verify` runs both, whose member pages differ on PostgreSQL (the
# compiled one reads them as JSON with the users inside), so each loads its own.
@pytest.mark.parametrize(
    "executor",
    [
        pytest.param(name, marks=pytest.mark.settings(graphql_executor=name))
        for name in ["compiled", "standard"]
    ],
)
async def test_dataloader_batches_are_spans_and_fields_are_not(
    traced: Env, exporter: InMemorySpanExporter, executor: str
) -> None:
    owner = await team(traced, 3)
    exporter.clear()
    assert "errors" not in await owner.gql(TEAM)
    spans = exporter.get_finished_spans()
    ours = by_scope(spans, "gateway")
    (operation,) = [s for s in ours if s.name == "query Team"]
    batches = [s for s in ours if s is not operation]
    assert batches and all(s.name.startswith("dataloader ") for s in batches)
    assert all(operation in ancestors(s, spans) for s in batches)
    # Nine members' users in three organizations: one batch per loader, not one per field.
    names = [s.attributes["dataloader.name"] for s in batches if s.attributes]
    assert len(names) == len(set(names))
    assert any(s.attributes and s.attributes["dataloader.batch_size"] == 3 for s in batches)


async def test_statements_are_spans_inside_their_request(
    traced: Env, exporter: InMemorySpanExporter
) -> None:
    owner = await traced.user()
    exporter.clear()
    assert (await owner.get(f"/users/{owner.user_id}/balance")).status_code == 200
    spans = exporter.get_finished_spans()
    statements = by_scope(spans, "opentelemetry.instrumentation.sqlalchemy")
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert statements
    assert all(ancestors(s, spans)[-1] is server for s in statements)
    assert server.name == "GET /api/v1/users/{id}/balance"
    assert server.attributes and server.attributes["http.route"] == "/api/v1/users/{id}/balance"


async def test_the_request_id_is_the_trace_id(traced: Env, exporter: InMemorySpanExporter) -> None:
    response = await traced.http.get("/healthz", headers={"X-Request-Id": "client-chosen"})
    (server,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert response.headers["x-request-id"] == format(server.context.trace_id, "032x")


async def test_outgoing_http_calls_are_spans(
    traced: Env, exporter: InMemorySpanExporter, localstripe: str
) -> None:
    exporter.clear()
    async with httpx.AsyncClient() as client:
        await client.get(f"{localstripe}/v1/customers")
    (call,) = by_scope(exporter.get_finished_spans(), "opentelemetry.instrumentation.httpx")
    assert call.kind is SpanKind.CLIENT


def test_without_an_endpoint_opentelemetry_is_not_even_imported(tmp_path: Path) -> None:
    program = (
        "import sys\n"
        "from gateway.app import create_app\n"
        "from gateway.settings import Settings\n"
        f"create_app(Settings(database_url='sqlite+aiosqlite:///{tmp_path}/off.db'))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    ran = subprocess.run(
        [sys.executable, "-c", program],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout.strip() == "[]"


async def test_without_an_endpoint_nothing_is_traced_or_installed(env: Env) -> None:
    assert env.settings.otel_exporter_otlp_endpoint is None
    assert tracing.tracer() is None
    assert env.state.tracing is None
    assert RequestIdMiddleware in [m.cls for m in env.app.user_middleware]
    assert not [m for m in env.app.user_middleware if m.cls.__module__.startswith("opentelemetry")]
    response = await env.http.get("/healthz")
    assert len(response.headers["x-request-id"]) == 16
