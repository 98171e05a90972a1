"""The database session layer: the connection pool, JSON column decoding."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from sqlalchemy import event, literal_column, select, text
from sqlalchemy.exc import DBAPIError

from gateway.db.session import create_engine, create_session_factory, fetch_rows, load_json
from gateway.settings import Settings
from tests.conftest import PG_URL


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
        async with sessions() as session:
            with pytest.raises(DBAPIError):
                await fetch_rows(session, backend)
        async with sessions() as session:
            assert (await fetch_rows(session, backend))[0].pid != pid
    finally:
        await engine.dispose()
