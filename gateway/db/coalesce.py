"""The reads of one event-loop turn as one statement (`ReadCoalescer`, PostgreSQL).

The loaders of one query level dispatch together (resolvers/batching.py: their batches start
in the same turn, and the compiled executor awaits a level with one `gather`), so the plain
reads (`fetch_rows`) that sibling fields send arrive in the same turn. The first waits that
turn out; the others join it, and the turn's reads go as one statement, each read's columns
as arrays (one row: an aggregate without GROUP BY),

    SELECT * FROM (SELECT array_agg(t.c0), array_agg(t.c1) FROM (<read 1>) AS t(c0, c1)) AS r0,
                  (SELECT array_agg(t.c0) FROM (<read 2>) AS t(c0)) AS r1

with each read's bind parameters renumbered after the previous one's. asyncpg decodes each
array with its column's codec, found once per array, into the same values (same types, same
codecs) as the read alone would return, and the rows are the arrays zipped, in the read's
order (one aggregate step takes each row once, in the order its subquery gives them), so each
part's rows are made exactly as its own read's. A read with a column that cannot go in an
array (an array itself, or of no known type: `Shape.arrays`) goes as one array of anonymous
records instead, `(SELECT ARRAY(SELECT ROW(t.c0, …) FROM (<read>) AS t(c0, …))) AS r2`,
which costs asyncpg a codec lookup per field of every row and PostgreSQL a record each: for a
page of 100 rows about a third more client CPU and server time than its columns' arrays
(bench/README.md, "Fourteenth pass"). A read alone in its turn is sent as it is. A loader's batch reads three turns after its first load: loaders announce
their queued batches (`expect`, `arrived`), and the turn's first read waits for them. `verify`
runs each read alone as well and fails when a part differs.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection

from gateway.db.engine import decode_timestamptz
from gateway.db.sqlalchemy_internals import fetch_on_driver

# A bind parameter of asyncpg's SQL (`$3`), or a string literal (skipped when renumbering).
_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\$(\d+)")
_COMBINED: dict[tuple[Shape, ...], str] = {}
# The most event-loop turns a turn's first read waits for reads announced by `expect`: a
# loader's batch reads three turns after its first load (resolvers/batching.py).
MOST_TURNS = 5


class Shape(NamedTuple):
    """A read as the coalescer needs it: its SQL, how many parameters and result columns it
    has, and which of those are `timestamptz`. The engine decodes those from text
    (gateway/db/engine.py), which asyncpg cannot do inside a record (it reads a record's
    fields in binary): in a combined statement they are sent as text and decoded here."""

    sql: str
    params: int
    columns: int
    timestamps: tuple[int, ...]
    # Whether each column may be read as an array of its values (`array_agg`): none is an
    # array itself, or of a type the driver does not know.
    arrays: bool = True


def combined_sql(shapes: Sequence[Shape]) -> str:
    """One statement of one row answering each read as its columns' arrays (or as an array of
    records), its parameters renumbered after the previous reads' and its timestamps as
    text."""
    key = tuple(shapes)
    found = _COMBINED.get(key)
    if found is not None:
        return found
    selects: list[str] = []
    offset = 0
    for shape in shapes:
        shift = offset

        def renumber(match: re.Match[str], shift: int = shift) -> str:
            number = match.group(1)
            return match.group(0) if number is None else f"${int(number) + shift}"

        sql = _PLACEHOLDER.sub(renumber, shape.sql) if shift else shape.sql
        names = ", ".join(f"c{i}" for i in range(shape.columns))
        fields = [
            f"t.c{i}::text" if i in shape.timestamps else f"t.c{i}" for i in range(shape.columns)
        ]
        name = f"r{len(selects)}"
        if shape.arrays:
            columns = ", ".join(f"array_agg({field})" for field in fields)
            selects.append(f"(SELECT {columns} FROM ({sql}) AS t({names})) AS {name}")
        else:
            records = f"ARRAY(SELECT ROW({', '.join(fields)}) FROM ({sql}) AS t({names}))"
            selects.append(f"(SELECT {records}) AS {name}")
        offset += shape.params
    found = "SELECT * FROM " + ", ".join(selects)
    if len(_COMBINED) > 1024:
        _COMBINED.clear()
    _COMBINED[key] = found
    return found


def answers_of(shapes: Sequence[Shape], record: Sequence[Any]) -> list[list[tuple[Any, ...]]]:
    """Each read's rows from the combined statement's one row (`combined_sql`)."""
    values = tuple(record)
    answers = []
    at = 0
    for shape in shapes:
        if shape.arrays:
            columns = values[at : at + shape.columns]
            at += shape.columns
            # No rows: every aggregate is NULL.
            rows = [] if columns[0] is None else list(zip(*columns, strict=True))
        else:
            rows = values[at]
            at += 1
        answers.append(_decoded(shape, rows))
    return answers


def _decoded(shape: Shape, records: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    if not shape.timestamps or not records:
        return records
    positions = shape.timestamps
    rows = []
    for record in records:
        values = list(record)
        for i in positions:
            if values[i] is not None:
                values[i] = decode_timestamptz(values[i])
        rows.append(tuple(values))
    return rows


class _Abandoned(Exception):
    """The read that was to send its turn's reads was cancelled before they were answered."""


class _Read:
    __slots__ = ("args", "future", "shape")

    def __init__(
        self, shape: Shape, args: list[Any], future: asyncio.Future[list[Any]] | None
    ) -> None:
        self.shape, self.args, self.future = shape, args, future


class ReadCoalescer:
    """A request's plain reads on PostgreSQL, gathered per event-loop turn (module docstring).

    `connection` gives the connection to read on when the turn's reads go (the session's if the
    request has one by then, so a read sees what the request wrote before it)."""

    __slots__ = ("_connection", "_expected", "_turn", "verify")

    def __init__(self, connection: Callable[[], Awaitable[Connection]], *, verify: bool) -> None:
        self._connection = connection
        self._turn: list[_Read] | None = None
        self._expected = 0
        self.verify = verify

    def expect(self) -> None:
        """A read is on its way and starts a few turns from now: a loader's batch, queued now
        and dispatched later (resolvers/batching.py). The turn's first read waits for it (up to
        `MOST_TURNS`), so a level's direct reads (JSON pages) and its loaders' reads, which
        start those turns apart, go as one statement. `arrived` when the batch starts."""
        self._expected += 1

    def arrived(self) -> None:
        """The batch announced by `expect` runs now: its read, if it makes one, joins the turn
        in this step."""
        self._expected -= 1

    async def fetch(self, shape: Shape, args: list[Any]) -> list[Any]:
        """The driver's records of the read (tuples when read with others)."""
        turn = self._turn
        if turn is not None:  # another read of this turn waits for it: go with it
            future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
            turn.append(_Read(shape, args, future))
            try:
                return await future
            except _Abandoned:  # the read that was to send the turn's was cancelled
                return await fetch_on_driver(await self._connection(), shape.sql, args)
        turn = self._turn = [_Read(shape, args, None)]
        try:
            try:
                await asyncio.sleep(0)  # the turn's other reads (siblings started with this one)
                turns = 1
                while self._expected > 0 and turns < MOST_TURNS:  # loaders' batches to come
                    await asyncio.sleep(0)
                    turns += 1
            finally:
                self._turn = None  # reads from here on start the next turn
            sync = await self._connection()
            if len(turn) == 1:
                return await fetch_on_driver(sync, shape.sql, args)
            answers = await self._together(sync, turn)
        except BaseException as error:
            # A failed statement fails each of its reads; a cancelled sender leaves the others
            # to read alone (their own tasks were not cancelled).
            failure = error if isinstance(error, Exception) else _Abandoned()
            for read in turn[1:]:
                if read.future is not None and not read.future.done():
                    read.future.set_exception(failure)
            raise
        for read, records in zip(turn[1:], answers[1:], strict=True):
            if read.future is not None and not read.future.done():
                read.future.set_result(records)
        return answers[0]

    async def _together(self, sync: Connection, turn: list[_Read]) -> list[list[Any]]:
        shapes = [read.shape for read in turn]
        args = [arg for read in turn for arg in read.args]
        (record,) = await fetch_on_driver(sync, combined_sql(shapes), args)
        answers = answers_of(shapes, record)
        if self.verify:
            for shape, read, records in zip(shapes, turn, answers, strict=True):
                alone = [tuple(r) for r in await fetch_on_driver(sync, shape.sql, read.args)]
                if alone != records:
                    raise AssertionError(
                        f"coalesced read differs from the read alone:\n{shape.sql}\n"
                        f"together: {records!r}\nalone: {alone!r}"
                    )
        return answers
