"""The combined statement of coalesced reads (gateway/db/coalesce.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Connection, event

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


@contextlib.asynccontextmanager
async def _coalescer() -> AsyncIterator[tuple[ReadCoalescer, list[str]]]:
    """A coalescer on one PostgreSQL connection, and the statements it sends."""
    assert PG_URL
    engine = create_engine(PG_URL)
    statements: list[str] = []
    event.listen(
        engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2])
    )
    connection = await engine.connect()
    sync = connection.sync_connection
    assert sync is not None

    async def held() -> Connection:
        return sync

    try:
        yield ReadCoalescer(held, verify=False), statements
    finally:
        await connection.close()
        await engine.dispose()


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
    async with _coalescer() as (coalescer, _):
        shape = Shape(sql, 1, 1, ())
        first, *others = [asyncio.ensure_future(coalescer.fetch(shape, [n])) for n in (1, 2, 3)]
        await asyncio.sleep(after)  # all three in the turn, the first to send it
        first.cancel()
        answers = await asyncio.wait_for(asyncio.gather(*others), timeout=10)
        assert [[tuple(r) for r in rows] for rows in answers] == [[(3,)], [(4,)]]
        assert first.cancelled()


async def _turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def _reads_with_a_batch_coming(*, announced: bool, arrives: bool) -> tuple[Any, list[str]]:
    """A read, and a loader's batch queued in the same turn that reads three turns later
    (resolvers/batching.py); the answers and the statements sent."""
    shape = Shape("SELECT $1::int + 1", 1, 1, ())
    async with _coalescer() as (coalescer, statements):

        async def batch() -> list[Any]:
            await _turns(3)  # the loader's dispatch: two callbacks, then the batch's task
            if arrives:
                coalescer.arrived()
            return await coalescer.fetch(shape, [10])

        if announced:
            coalescer.expect()
        answers = await asyncio.wait_for(
            asyncio.gather(coalescer.fetch(shape, [1]), batch()), timeout=10
        )
    return [[tuple(r) for r in rows] for rows in answers], statements


@pytest.mark.skipif(not PG_URL, reason="read coalescing is PostgreSQL's")
async def test_a_read_waits_for_a_loaders_batch_announced_as_coming_and_shares_its_statement() -> (
    None
):
    answers, statements = await _reads_with_a_batch_coming(announced=True, arrives=True)
    assert answers == [[(2,)], [(11,)]]
    assert len(statements) == 1, statements


@pytest.mark.skipif(not PG_URL, reason="read coalescing is PostgreSQL's")
async def test_a_read_does_not_wait_for_a_batch_nobody_announced() -> None:
    answers, statements = await _reads_with_a_batch_coming(announced=False, arrives=False)
    assert answers == [[(2,)], [(11,)]]
    assert len(statements) == 2, statements


@pytest.mark.skipif(not PG_URL, reason="read coalescing is PostgreSQL's")
async def test_reads_are_answered_when_an_announced_batch_never_arrives() -> None:
    """The first read waits `MOST_TURNS` turns at most: an announced batch that was cancelled
    before it started holds nothing up (`wait_for` fails the test on a hang)."""
    answers, _ = await _reads_with_a_batch_coming(announced=True, arrives=False)
    assert answers == [[(2,)], [(11,)]]
