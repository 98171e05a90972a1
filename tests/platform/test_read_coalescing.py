"""The combined statement of coalesced reads (gateway/db/coalesce.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Connection, event

from gateway.db.coalesce import ReadCoalescer, Shape, answers_of, combined_sql
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
        "SELECT * FROM (SELECT array_agg(t.c0) FROM (SELECT a FROM x WHERE a = $1 AND b = $2)"
        " AS t(c0)) AS r0, (SELECT array_agg(t.c0), array_agg(t.c1::text) FROM"
        " (SELECT c, d FROM y WHERE c = $3) AS t(c0, c1)) AS r1"
    )


def test_a_read_with_a_column_that_cannot_be_an_array_goes_as_records() -> None:
    sql = combined_sql(
        [
            Shape("SELECT a FROM x WHERE a = $1", 1, 1, ()),
            Shape("SELECT tags, d FROM y WHERE c = $1", 1, 2, (1,), arrays=False),
        ]
    )
    assert sql.endswith(
        ", (SELECT ARRAY(SELECT ROW(t.c0, t.c1::text) FROM (SELECT tags, d FROM y"
        " WHERE c = $2) AS t(c0, c1))) AS r1"
    )


def test_each_reads_rows_are_its_columns_arrays_zipped_and_none_when_they_are_null() -> None:
    shapes = [
        Shape("SELECT a, b FROM x", 0, 2, ()),
        Shape("SELECT c FROM y", 0, 1, ()),
        Shape("SELECT d, e FROM z", 0, 2, (), arrays=False),
    ]
    record = (["a1", None], [1, 2], None, [("d", 5)])
    assert answers_of(shapes, record) == [[("a1", 1), (None, 2)], [], [("d", 5)]]


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


# Reads of each kind PostgreSQL answers (empty, NULLs, an array column, which goes as records,
# timestamps, JSON, numerics, a dollar in a literal): (SQL, arguments, columns, timestamps).
KINDS_OF_READS: list[tuple[str, list[Any], int, tuple[int, ...]]] = [
    ("SELECT x FROM generate_series(1, $1::int) AS x WHERE false", [1], 1, ()),
    ("SELECT NULL::text AS a, $1::int AS b", [7], 2, ()),
    ("SELECT ARRAY[x, x + 1] AS pair, x FROM generate_series(1, $1::int) AS x", [3], 2, ()),
    (
        "SELECT timestamptz '2026-12-07 10:00:00.5+00' - x * interval '1 day'"
        " FROM generate_series(1, $1::int) AS x",
        [2],
        1,
        (0,),
    ),
    (
        "SELECT jsonb_build_object('n', x), x::numeric / 3 FROM generate_series(1, $1::int) AS x",
        [2],
        2,
        (),
    ),
    ("SELECT 'it''s $1' AS s, $1::bigint * 4611686018427387904 AS big", [1], 2, ()),
]


@pytest.mark.skipif(not PG_URL, reason="read coalescing is PostgreSQL's")
async def test_reads_of_every_kind_read_together_answer_as_each_alone() -> None:
    shapes = [
        Shape(sql, len(args), columns, timestamps, arrays="ARRAY[" not in sql)
        for sql, args, columns, timestamps in KINDS_OF_READS
    ]
    async with _coalescer() as (coalescer, statements):
        coalescer.verify = True  # each read alone as well, compared
        answers = await asyncio.gather(
            *(
                coalescer.fetch(shape, args)
                for shape, (_, args, _, _) in zip(shapes, KINDS_OF_READS, strict=True)
            )
        )
    assert len(statements) == 1 + len(KINDS_OF_READS), statements  # together, then each alone
    assert "array_agg" in statements[0] and "ARRAY(SELECT ROW" in statements[0]
    assert [len(rows) for rows in answers] == [0, 1, 3, 2, 2, 1]
    assert answers[1] == [(None, 7)] and answers[2][0] == ([1, 2], 1)
