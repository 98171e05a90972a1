"""Fixtures: the app on a real database per test (SQLite file always, PostgreSQL when
GATEWAY_TEST_DATABASE_URL is set), authenticated clients per role, statement counting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import SQLModel

from gateway.app import create_app
from gateway.db import models
from gateway.db.engine import create_engine
from gateway.db.migrate import upgrade
from gateway.db.session import create_session_factory
from gateway.settings import Settings
from gateway.tracing import Tracing
from resolvers.api_keys import insert_api_key
from resolvers.users import create_user

PG_URL = os.environ.get("GATEWAY_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for every test (fast, and the real migrations)."""
    import asyncio

    path = tmp_path_factory.mktemp("template") / "template.db"

    async def build() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(build())
    return path


async def create_migrated_schema(prefix: str) -> str:
    """A new PostgreSQL schema on the test server, migrated to the latest revision."""
    assert PG_URL
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await admin.dispose()
    engine = create_engine(PG_URL, search_path=schema)
    await upgrade(engine)
    await engine.dispose()
    return schema


async def drop_schema(schema: str) -> None:
    assert PG_URL
    admin = create_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await admin.dispose()


def stop_process(process: Any, timeout: float = 10) -> None:
    """Terminate a server the tests started, killing it if it does not stop in time."""
    import subprocess

    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
async def pg_schema() -> AsyncIterator[str | None]:
    """A migrated PostgreSQL schema for this test session, dropped afterwards."""
    if not PG_URL:
        yield None
        return
    schema = await create_migrated_schema("gw_test")
    try:
        yield schema
    finally:
        await drop_schema(schema)


async def _truncate_pg(settings: Settings) -> None:
    engine = create_engine(settings.database_url, search_path=settings.database_schema)
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@dataclass
class StatementCounter:
    statements: list[str] = field(default_factory=list)
    active: bool = False

    @contextlib.contextmanager
    def counting(self) -> Iterator[list[str]]:
        self.statements.clear()
        self.active = True
        try:
            yield self.statements
        finally:
            self.active = False


@dataclass
class Client:
    """An HTTP client acting as one user (or anonymous, or the service)."""

    http: httpx.AsyncClient
    token: str | None
    user_id: str | None = None

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return {**headers, **(extra or {})}

    async def gql(
        self, query: str, variables: dict[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers=self._headers(kw.get("headers")),
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def gql_data(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        body = await self.gql(query, variables)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    async def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        return await self.http.request(
            method, "/api/v1" + path, json=json, headers=self._headers(headers), **kw
        )

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, json=json, **kw)

    async def put(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.request("PUT", path, json=json, **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.request("PATCH", path, json=json, **kw)

    async def delete(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.request("DELETE", path, json=json, **kw)


class Env:
    """One test's world: settings, the app, a session factory, and helpers to add users."""

    def __init__(self, settings: Settings, app: Any, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.app = app
        self.http = http
        self.state = app.state.gateway
        self.sessions: async_sessionmaker[AsyncSession] = self.state.session_factory
        self.counter = StatementCounter()

        @event.listens_for(self.state.engine.sync_engine, "before_cursor_execute")
        def _count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if self.counter.active:
                self.counter.statements.append(statement)

    @property
    def backend(self) -> str:
        return "postgresql" if self.settings.database_url.startswith("postgresql") else "sqlite"

    def client(self, token: str | None = None, user_id: str | None = None) -> Client:
        return Client(self.http, token, user_id)

    @property
    def anonymous(self) -> Client:
        return self.client()

    async def user(self, email: str | None = None, name: str = "") -> Client:
        """A new user with a personal account and an API key, as a client."""
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        async with self.sessions() as session:
            user = await create_user(session, email=email, display_name=name)
            _, token = await insert_api_key(session, user_id=user.id, name="test")
            await session.commit()
        return self.client(token, user.id)

    async def organization(self, owner: Client, name: str = "Acme") -> str:
        """An organization owned by `owner`, with its billing account."""
        async with self.sessions() as session:
            org = models.Organization(name=name)
            session.add(org)
            await session.flush()
            session.add(models.Account(kind="organization", organization_id=org.id))
            session.add(models.Member(organization_id=org.id, user_id=owner.user_id, role="owner"))
            await session.commit()
            return org.id

    async def add_member(self, org_id: str, client: Client, role: str = "member") -> str:
        async with self.sessions() as session:
            member = models.Member(organization_id=org_id, user_id=client.user_id, role=role)
            session.add(member)
            await session.commit()
            return member.id

    async def account_id(self, *, user_id: str | None = None, org_id: str | None = None) -> str:
        """The id of a user's personal account, or of an organization's account."""
        column = models.Account.user_id if user_id else models.Account.organization_id
        found: str = await self.scalar(
            select(models.Account.id).where(column == (user_id or org_id))
        )
        return found

    async def member(self, org_id: str, role: str = "member") -> Client:
        """A new user who joins the organization with `role`, as a client."""
        client = await self.user()
        await self.add_member(org_id, client, role)
        return client

    async def scalar(self, statement: Any) -> Any:
        async with self.sessions() as session:
            return await session.scalar(statement)

    async def all(self, statement: Any) -> list[Any]:
        async with self.sessions() as session:
            return list((await session.execute(statement)).scalars())


def base_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "log_level": "warning",
        "service_token": "service-token-for-tests",
        "jwt_hs256_secret": "jwt-secret-for-tests-0123456789abcdef",
        "jwt_issuer": "https://idp.test/",
        "jwt_audience": "gateway-tests",
        "migrate_on_start": False,
        # Every GraphQL query of the suite runs on both executors and fails on any difference.
        "graphql_executor": "verify",
        # Every usage summary and metrics read sums the roll-ups and the raw rows, and compares.
        "usage_aggregation": "verify",
        # Every key served from the verified-key cache is read again and compared.
        "auth_cache_verify": True,
        # Every page read ahead of its field (schema/declare.py `reads_ahead`) is checked to be
        # the page the field shows.
        "read_ahead": "verify",
        # Tests call anonymously from one address far more often than a client would;
        # tests/security/test_rate_limits_anonymous.py turns the limit on.
        "rate_limit_anonymous_per_minute": 0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(params=BACKENDS)
async def env(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    pg_schema: str | None,
) -> AsyncIterator[Env]:
    settings = env_settings(request, tmp_path, sqlite_template, pg_schema)
    truncate = settings if request.param == "postgresql" else None
    async with running_env(settings, truncate=truncate) as env:
        yield env


def env_settings(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    pg_schema: str | None,
) -> Settings:
    """The settings of a test's app on its backend (`request.param`): a copy of the migrated
    SQLite file, or the session's PostgreSQL schema; with the test's `settings` marker."""
    overrides = getattr(request, "param_overrides", {})
    marker = request.node.get_closest_marker("settings")
    if marker is not None:
        overrides = {**overrides, **marker.kwargs}
    if request.param == "sqlite":
        db = tmp_path / "test.db"
        shutil.copy(sqlite_template, db)
        return base_settings(database_url=f"sqlite+aiosqlite:///{db}", **overrides)
    assert PG_URL and pg_schema
    return base_settings(database_url=PG_URL, database_schema=pg_schema, **overrides)


@contextlib.asynccontextmanager
async def running_env(
    settings: Settings,
    *,
    truncate: Settings | None = None,
    raise_app_exceptions: bool = True,
    traces: Tracing | None = None,
) -> AsyncIterator[Env]:
    """The app on these settings behind an HTTP client; its PostgreSQL tables emptied after,
    on `truncate`'s database and schema. `traces` receives its spans."""
    app = create_app(settings, traces=traces)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        env = Env(settings, app, http)
        try:
            yield env
        finally:
            await env.state.close()
            if truncate is not None:
                await _truncate_pg(truncate)


def free_port() -> int:
    """A loopback port nothing listens on (a server the test starts takes it)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def localstripe() -> Iterator[str]:
    """A localstripe server (a stateful fake Stripe) on a free 127.0.0.1 port: its base URL."""
    import socket
    import subprocess
    import sys
    import time

    def start() -> tuple[subprocess.Popen[bytes], int] | None:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.stripe_server", str(port)],
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return process, port
            except OSError:
                time.sleep(0.1)
        process.kill()
        process.wait()
        return None

    # The free port may be taken by someone else before the server binds it: try again.
    started = start() or start() or start()
    if started is None:
        raise RuntimeError("localstripe did not start")
    process, port = started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "settings(**kw): Settings overrides for the env fixture")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """After `make test`: what did not run and why, and how to run all of it."""
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            reasons[str(longrepr[2]).removeprefix("Skipped: ")] += 1
    missing = []
    if not PG_URL:
        missing.append(
            "PostgreSQL: GATEWAY_TEST_DATABASE_URL is not set, so the database tests ran on "
            "SQLite only"
        )
    if not REDIS_URL:
        missing.append(
            "Redis: GATEWAY_TEST_REDIS_URL is not set (shared rate limits, persisted queries)"
        )
    if not reasons and not missing:
        return
    write = terminalreporter.write_line
    terminalreporter.section("what did not run")
    for reason, count in reasons.most_common():
        write(f"{count} skipped: {reason}")
    for line in missing:
        write(line)
    if missing:
        write(
            "Everything (a PostgreSQL server and a Redis server running): "
            "GATEWAY_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test "
            "GATEWAY_TEST_REDIS_URL=redis://127.0.0.1:6379/0 make test"
        )


__all__ = ["Client", "Env", "base_settings", "create_session_factory"]


@pytest.fixture
async def one_rate_window() -> None:
    """Rate limits count in fixed windows of a wall-clock minute (gateway/ratelimit.py): a test
    whose requests must all fall in one window starts with 15 s of its minute left at least,
    else a minute's turn mid-test resets the counts (it did, once in a while)."""
    left = 60 - time.time() % 60
    if left < 15:
        await asyncio.sleep(left + 0.05)
