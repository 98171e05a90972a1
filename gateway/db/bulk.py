"""Whole-batch inserts: one statement for any number of rows, one array parameter per column."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Table, column, func, insert, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.session import dialect_name


async def insert_rows(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, object]],
    *,
    keys: Mapping[str, str] | None = None,
) -> None:
    """Insert `rows` into `table` in the caller's transaction. Every row has the same keys:
    column names, or the row keys that `keys` maps column names to (`{"metadata": "metadata_"}`).

    On PostgreSQL one `INSERT … SELECT … FROM unnest($1::type[], $2::type[], …)`: the text is
    the same for 1 or 1,000 rows, so it is prepared and planned once per connection, and the
    values travel as one array per column (asyncpg encodes each array in one go) instead of
    one bound parameter per value. Each array is typed by its column's SQLAlchemy type, so a
    value is converted exactly as a row-by-row insert converts it (JSON through the dialect's
    serializer). Elsewhere SQLAlchemy's executemany insert. Python-side column defaults are not
    applied on PostgreSQL: give every column that has one.
    """
    if not rows:
        return
    renamed = keys or {}
    names = [name for name in table.c.keys() if renamed.get(name, name) in rows[0]]
    if dialect_name(session) != "postgresql":
        await session.execute(
            insert(table),
            [{name: row[renamed.get(name, name)] for name in names} for row in rows],
        )
        return
    arrays = [
        literal([row[renamed.get(name, name)] for row in rows], ARRAY(table.c[name].type))
        for name in names
    ]
    source = (
        func.unnest(*arrays)
        .table_valued(*(column(name, table.c[name].type) for name in names))
        .render_derived(name="batch")
    )
    await session.execute(insert(table).from_select(names, select(*source.c)))
