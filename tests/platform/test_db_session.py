"""The database session layer: the connection pool, JSON column decoding."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, literal_column, select, text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from gateway.db.engine import create_engine, decode_timestamptz
from gateway.db.models import Organization
from gateway.db.pool import ConnectionGate
from gateway.db.session import RequestDatabase, _Compiled, create_session_factory, fetch_rows
from gateway.errors import DatabaseUnavailable, ServiceBusy
from gateway.jsoncodec import load_json
from gateway.settings import Settings
from tests.conftest import PG_URL, Env


@pytest.mark.parametrize(
    "document",
    [
        '{"client": "ide", "n": [1, 2.5, null, true], "nested": {"a": "é"}}',
        '{"big": 18446744073709551616, "negative": -9223372036854775809}',
        '{"id": "1234567890123456789012345"}',
        '{"huge": 1e400, "nan": NaN}',
        '{"lone": "\\ud800"}',
        "12",
        "null",
    ],
)
def test_json_columns_decode_as_the_standard_library_does(document: str) -> None:
    assert repr(load_json(document)) == repr(json.loads(document))  # repr: NaN != NaN


def test_rows_keep_asyncpgs_utc_timestamps_and_convert_any_other() -> None:
    compiled = _Compiled(
        select(Organization.id, Organization.created_at, Organization.deleted_at),
        asyncpg_dialect(),
    )
    utc = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
    row = compiled.make(("org-1", utc, None))
    assert row == ("org-1", utc, None) and row.created_at is utc
    naive = datetime(2026, 12, 1, 22, 0)
    assert compiled.make(("org-1", utc, naive)).deleted_at == utc
    paris = timezone(timedelta(hours=1))
    converted = compiled.make(("org-1", datetime(2026, 12, 1, 23, 0, tzinfo=paris), None))
    assert converted.created_at == utc and converted.created_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("text_value", "expected"),
    [
        ("2026-11-25 10:00:00+00", datetime(2026, 11, 25, 10, tzinfo=UTC)),
        ("2026-11-25 10:00:00.5+00", datetime(2026, 11, 25, 10, 0, 0, 500_000, tzinfo=UTC)),
        ("2026-11-25 10:00:00.000001+00", datetime(2026, 11, 25, 10, 0, 0, 1, tzinfo=UTC)),
        ("0999-01-02 03:04:05.999999+00", datetime(999, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC)),
        ("infinity", datetime.max.replace(tzinfo=UTC)),
        ("-infinity", datetime.min.replace(tzinfo=UTC)),
    ],
)
def test_postgresql_timestamp_text_decodes_to_aware_utc(
    text_value: str, expected: datetime
) -> None:
    decoded = decode_timestamptz(text_value)
    assert decoded == expected
    assert decoded.tzinfo is UTC


def test_a_bc_timestamp_is_refused_as_asyncpg_refused_it() -> None:
    with pytest.raises(ValueError):
        decode_timestamptz("0044-03-15 00:00:00+00 BC")


@pytest.mark.skipif(not PG_URL, reason="asyncpg's codecs")
async def test_timestamps_round_trip_through_postgresql_as_utc(
    pg_schema: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.db.engine as db_engine

    decoded: list[str] = []

    def counting(text_value: str) -> datetime:
        decoded.append(text_value)
        return decode_timestamptz(text_value)

    monkeypatch.setattr(db_engine, "decode_timestamptz", counting)  # read as text, by us
    engine = create_engine(PG_URL or "", pool_size=1, search_path=pg_schema)
    sessions = create_session_factory(engine)
    values = [
        datetime(2026, 11, 25, 10, tzinfo=UTC),
        datetime(2026, 11, 25, 10, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 11, 25, 10, 0, 0, 999_999, tzinfo=UTC),
        datetime(1000, 1, 1, tzinfo=UTC),
        datetime(2026, 11, 25, 11, 30, tzinfo=timezone(timedelta(hours=1, minutes=30))),
    ]
    try:
        async with sessions() as session:
            settings = (
                await session.execute(
                    text("SELECT current_setting('TimeZone'), current_setting('DateStyle')")
                )
            ).one()
            assert tuple(settings) == ("UTC", "ISO, MDY")
            for value in values:
                row = (
                    await session.execute(
                        text(
                            "SELECT CAST(:at AS timestamptz) AS at, CAST(:at AS timestamptz) = :at AS same"
                        ),
                        {"at": value},
                    )
                ).one()
                assert row.at == value and row.at.tzinfo is UTC and row.same
                org = Organization(name="t", created_at=value, updated_at=value)
                session.add(org)
                await session.flush()
                found = await fetch_rows(
                    session, select(Organization.created_at).where(Organization.id == org.id)
                )
                assert found[0].created_at == value and found[0].created_at.tzinfo is UTC
            await session.rollback()
    finally:
        await engine.dispose()
    assert len(decoded) >= 2 * len(values)


@pytest.mark.skipif(not PG_URL, reason="the pool is PostgreSQL's")
async def test_concurrency_above_the_pool_waits_for_a_pooled_connection(
    pg_schema: str | None,
) -> None:
    settings = Settings(database_pool_size=2)
    engine = create_engine(
        PG_URL or "",
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        search_path=pg_schema,
    )
    opened: list[object] = []
    event.listen(engine.sync_engine, "connect", lambda *_: opened.append(1))
    sessions = create_session_factory(engine)

    async def request() -> int:
        async with sessions() as session:
            return (await session.execute(text("SELECT 1 FROM pg_sleep(0.005)"))).scalar_one()

    try:
        for _ in range(3):
            assert await asyncio.gather(*(request() for _ in range(6))) == [1] * 6
    finally:
        await engine.dispose()
    assert len(opened) == 2


@pytest.mark.skipif(not PG_URL, reason="asyncpg's connections")
async def test_a_connection_that_died_under_a_read_is_replaced_not_reused(
    pg_schema: str | None,
) -> None:
    engine = create_engine(PG_URL or "", pool_size=1, search_path=pg_schema)
    sessions = create_session_factory(engine)
    backend = select(literal_column("pg_backend_pid()").label("pid"))
    try:
        async with sessions() as session:
            pid = (await fetch_rows(session, backend))[0].pid
            killer = await asyncpg.connect(PG_URL)
            try:
                await killer.execute("SELECT pg_terminate_backend($1)", pid)
            finally:
                await killer.close()
            with pytest.raises(DatabaseUnavailable):  # 503 to retry, not a 500
                await fetch_rows(session, backend)
        async with sessions() as session:
            assert (await fetch_rows(session, backend))[0].pid != pid
    finally:
        await engine.dispose()


@dataclass
class CountingEngine:
    engine: Any
    checkouts: list[object] = field(default_factory=list)

    def database(self) -> RequestDatabase:
        return RequestDatabase(create_session_factory(self.engine))

    @property
    def checked_out(self) -> int:
        return int(self.engine.sync_engine.pool.checkedout())


@pytest.fixture
async def pg_engine(pg_schema: str | None) -> AsyncIterator[CountingEngine]:
    if not PG_URL:
        pytest.skip("the request's own connection is PostgreSQL's")
    counting = CountingEngine(create_engine(PG_URL, pool_size=1, search_path=pg_schema))
    event.listen(counting.engine.sync_engine, "checkout", lambda *_: counting.checkouts.append(1))
    try:
        yield counting
    finally:
        await counting.engine.dispose()


def _org_names(org_id: str) -> Any:
    return select(Organization.name).where(Organization.id == org_id)


async def test_a_read_only_request_reads_on_one_connection_without_a_session(
    pg_engine: CountingEngine,
) -> None:
    db = pg_engine.database()
    backend = select(literal_column("pg_backend_pid()").label("pid"))
    first = (await fetch_rows(db, backend))[0].pid
    assert (await fetch_rows(db, backend))[0].pid == first
    assert not db.has_session
    await db.close()
    assert pg_engine.checkouts == [1]
    assert pg_engine.checked_out == 0


async def test_the_session_made_after_reads_writes_on_the_same_connection_and_commits(
    pg_engine: CountingEngine,
) -> None:
    db = pg_engine.database()
    organization = Organization(name="before")
    assert await fetch_rows(db, _org_names(organization.id)) == []
    db.session.add(organization)
    await db.session.flush()
    # The read sees the session's uncommitted write: one connection, one transaction.
    assert [r.name for r in await fetch_rows(db, _org_names(organization.id))] == ["before"]
    await db.session.commit()
    await db.close()
    assert pg_engine.checkouts == [1]
    other = pg_engine.database()
    assert [r.name for r in await fetch_rows(other, _org_names(organization.id))] == ["before"]
    await other.close()


async def test_an_uncommitted_write_is_rolled_back_when_the_request_ends(
    pg_engine: CountingEngine,
) -> None:
    db = pg_engine.database()
    await fetch_rows(db, select(literal_column("1").label("one")))
    organization = Organization(name="never")
    db.session.add(organization)
    await db.session.flush()
    await db.close()
    other = pg_engine.database()
    assert await fetch_rows(other, _org_names(organization.id)) == []
    await other.close()
    assert pg_engine.checked_out == 0


async def test_reads_after_the_session_was_made_use_its_connection(
    pg_engine: CountingEngine,
) -> None:
    db = pg_engine.database()
    session = db.session
    backend = select(literal_column("pg_backend_pid()").label("pid"))
    held = (await session.execute(backend)).scalar_one()
    assert (await fetch_rows(db, backend))[0].pid == held
    await db.close()
    assert pg_engine.checkouts == [1]


@pytest.mark.parametrize("gated", [True, False])
async def test_connections_go_to_requests_in_the_order_they_asked(
    pg_schema: str | None, gated: bool
) -> None:
    """One connection, two clients that each ask again as soon as they are served: with the
    gate (the pool `create_engine` makes) they take turns; SQLAlchemy's pool alone gives it
    back to whoever just returned it."""
    if not PG_URL:
        pytest.skip("the connection gate is PostgreSQL's")
    engine = create_engine(PG_URL, pool_size=1, search_path=pg_schema)
    if not gated:
        engine = create_async_engine(
            engine.url, pool_size=1, max_overflow=0, poolclass=AsyncAdaptedQueuePool
        )
    factory = create_session_factory(engine)
    served: list[str] = []

    async def client(name: str) -> None:
        for _ in range(4):
            db = RequestDatabase(factory)
            await fetch_rows(db, select(literal_column("1").label("one")))
            served.append(name)
            await db.close()

    try:
        await asyncio.gather(client("a"), client("b"))
    finally:
        await engine.dispose()
    if gated:
        assert served == ["a", "b"] * 4
    else:
        assert served != ["a", "b"] * 4  # the failure the gate is for


async def test_a_request_that_waits_too_long_for_a_connection_gets_a_pool_timeout(
    pg_schema: str | None,
) -> None:
    if not PG_URL:
        pytest.skip("the connection gate is PostgreSQL's")
    engine = create_engine(PG_URL, pool_size=1, pool_timeout=0.05, search_path=pg_schema)
    factory = create_session_factory(engine)
    try:
        first = RequestDatabase(factory)
        await fetch_rows(first, select(literal_column("1").label("one")))
        second = RequestDatabase(factory)
        with pytest.raises(ServiceBusy, match="No database connection"):
            await fetch_rows(second, select(literal_column("1").label("one")))
        await first.close()
        await second.close()
        third = RequestDatabase(factory)
        await fetch_rows(third, select(literal_column("1").label("one")))  # the slot came back
        await third.close()
    finally:
        await engine.dispose()


async def test_a_gate_slot_handed_to_a_waiter_that_was_cancelled_goes_to_the_next() -> None:
    gate = ConnectionGate(1, timeout=30)
    await gate.enter()
    cancelled = asyncio.ensure_future(gate.enter())
    served = asyncio.ensure_future(gate.enter())
    await asyncio.sleep(0)  # both wait
    gate.leave()  # the slot goes to the first waiter...
    cancelled.cancel()  # ...cancelled before it runs again: the slot passes on
    await served
    assert cancelled.cancelled()
    assert not gate.try_enter()
    gate.leave()
    assert gate.try_enter()


@pytest.mark.settings(database_pool_size=1, database_pool_timeout=0.05)
async def test_a_request_finding_no_free_connection_in_time_gets_503_to_retry(env: Env) -> None:
    if env.backend != "postgresql":
        pytest.skip("the connection gate is PostgreSQL's")
    alice = await env.user()
    await env.state.engine.sync_engine.pool.gate.enter()  # another request holds the only one
    rest = await alice.get(f"/users/{alice.user_id}/usages")
    assert rest.status_code == 503
    assert rest.headers["retry-after"] == "1"
    assert rest.json() == {
        "success": False,
        "error": "No database connection became free in 0.05 s; retry later",
    }
    graphql = await env.http.post(
        "/graphql",
        json={"query": "{ viewer { id } }"},
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert graphql.status_code == 503
    assert graphql.json()["errors"][0]["extensions"] == {"code": "SERVICE_UNAVAILABLE"}


@pytest.mark.skipif(not PG_URL, reason="plan_cache_mode is PostgreSQL's")
@pytest.mark.parametrize("mode", ["auto", "force_generic_plan", "force_custom_plan"])
async def test_an_engines_connections_plan_statements_as_it_is_told(mode: str) -> None:
    engine = create_engine(PG_URL or "", plan_cache_mode=mode)
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("SHOW plan_cache_mode"))).scalar() == mode
    finally:
        await engine.dispose()


@pytest.mark.settings(database_plan_cache_mode="force_custom_plan")
async def test_the_gateways_engine_takes_the_plan_cache_mode_setting(env: Env) -> None:
    if env.backend != "postgresql":
        pytest.skip("plan_cache_mode is PostgreSQL's")
    async with env.state.engine.connect() as connection:
        shown = (await connection.execute(text("SHOW plan_cache_mode"))).scalar()
    assert shown == "force_custom_plan"
