"""The combined statement of coalesced reads (gateway/db/coalesce.py)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Connection

from gateway.db.coalesce import ReadCoalescer, Shape, combined_sql
from gateway.db.engine import create_engine
from tests.conftest import PG_URL


def test_coalesced_reads_renumber_each_reads_parameters_after_the_previous_ones() -> None:
    sql = combined_sql(
        [
            Shape("SELECT a FROM x WHERE a = $1 AND b = $2", 2, 1, ()),
            Shape("SELECT c, d FROM y WHERE c = $1", 1, 2, (1,)),
        ]
    )
    assert sql == (
        "SELECT ARRAY(SELECT ROW(t.c0) FROM (SELECT a FROM x WHERE a = $1 AND b = $2) AS t(c0)),"
        " ARRAY(SELECT ROW(t.c0, t.c1::text) FROM (SELECT c, d FROM y WHERE c = $3) AS t(c0, c1))"
    )


def test_coalesced_reads_leave_a_dollar_inside_a_string_literal_alone() -> None:
    sql = combined_sql(
        [
            Shape("SELECT 1 WHERE a = $1", 1, 1, ()),
            Shape("SELECT '$1 it''s $2' WHERE b = $1", 1, 1, ()),
        ]
    )
    assert "'$1 it''s $2' WHERE b = $2" in sql


# (the read, how long the first read runs before it is cancelled): cancelled while it waits
# out its turn, or while the turn's statement is running.
CANCELLED_SENDERS = {
    "waiting-out-the-turn": ("SELECT $1::int + 1", 0.0),
    "statement-in-flight": ("SELECT $1::int + 1 FROM pg_sleep(0.2)", 0.05),
}


@pytest.mark.skipif(not PG_URL, reason="read coalescing is PostgreSQL's")
@pytest.mark.parametrize("sql, after", CANCELLED_SENDERS.values(), ids=CANCELLED_SENDERS)
async def test_reads_that_joined_a_cancelled_read_are_answered_alone(
    sql: str, after: float
) -> None:
    assert PG_URL
    engine = create_engine(PG_URL)
    connection = await engine.connect()
    sync = connection.sync_connection
    assert sync is not None

    async def held() -> Connection:
        return sync

    coalescer = ReadCoalescer(held, verify=False)
    try:
        shape = Shape(sql, 1, 1, ())
        first, *others = [asyncio.ensure_future(coalescer.fetch(shape, [n])) for n in (1, 2, 3)]
        await asyncio.sleep(after)  # all three in the turn, the first to send it
        first.cancel()
        answers = await asyncio.wait_for(asyncio.gather(*others), timeout=10)
        assert [[tuple(r) for r in rows] for rows in answers] == [[(3,)], [(4,)]]
        assert first.cancelled()
    finally:
        await connection.close()
        await engine.dispose()
