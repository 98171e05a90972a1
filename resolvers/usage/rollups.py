"""Daily usage roll-ups: an organization's usage per UTC day, user and model (`UsageDaily`),
added to by ingestion in the same transaction as the usage rows, and the rows a period's sums
read: the roll-ups of its whole UTC days and the raw usage of the partial days at its edges,
so a 30-day summary reads at most 30 days of roll-ups and two days of raw rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    SQLColumnExpression,
    String,
    Subquery,
    and_,
    cast,
    false,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine
from sqlmodel import SQLModel, col

from gateway.db.models import UsageDaily, UsageRecord
from gateway.db.session import dialect_name
from resolvers.usage.measures import SUMMED, TOTALS

# A roll-up's key, in its primary key's order.
KEY: tuple[str, ...] = ("organization_id", "day", "user_id", "model_name")
# What a period's rows can be grouped by: a roll-up key column and its raw counterpart.
GROUPABLE: tuple[str, ...] = ("day", "user_id", "model_name")
_TABLE = SQLModel.metadata.tables[UsageDaily.__tablename__]
_ARRAY_OF: dict[str, TypeEngine[Any]] = {
    "day": ARRAY(Date()),
    **{name: ARRAY(BigInteger()) for name in TOTALS},
}
_TEXT_ARRAY = ARRAY(String())

RollupKey = tuple[str, date, str, str]


def day_of(session: AsyncSession) -> ColumnElement[Any]:
    """The UTC calendar day of `created_at`: SQLite stores UTC text, PostgreSQL a timestamptz."""
    if dialect_name(session) == "postgresql":
        return cast(func.timezone("UTC", col(UsageRecord.created_at)), Date)
    return func.date(col(UsageRecord.created_at))


def _sums_by_key(rows: Sequence[Mapping[str, Any]]) -> dict[RollupKey, list[int]]:
    sums: dict[RollupKey, list[int]] = {}
    for row in rows:
        organization_id = row["organization_id"]
        if organization_id is None:  # personal usage: no organization reads it by period
            continue
        created_at: datetime = row["created_at"]
        key = (
            organization_id,
            created_at.astimezone(UTC).date(),
            row["user_id"],
            row["model_name"],
        )
        totals = sums.get(key)
        if totals is None:
            totals = sums[key] = [0] * len(TOTALS)
        totals[0] += 1
        for i, name in enumerate(SUMMED, start=1):
            totals[i] += row[name]
    return sums


async def add_usage(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add usage rows just written (values by `UsageRecord` attribute) to their roll-ups, in the
    caller's transaction: one upsert for the batch. Keys go in sorted order, so concurrent
    batches lock the roll-ups they share in the same order."""
    sums = _sums_by_key(rows)
    if not sums:
        return
    ordered = sorted(sums.items())
    if dialect_name(session) == "postgresql":
        # One array per column: the statement's text (and its prepared plan) is the same for
        # any batch.
        columns = [*KEY, *TOTALS]
        arrays = [[key[i] for key, _ in ordered] for i in range(len(KEY))] + [
            [totals[i] for _, totals in ordered] for i in range(len(TOTALS))
        ]
        unnested = select(
            *(
                func.unnest(literal(values, _ARRAY_OF.get(name, _TEXT_ARRAY))).label(name)
                for name, values in zip(columns, arrays, strict=True)
            )
        )
        pg = postgresql_insert(_TABLE).from_select(columns, unnested)
        await session.execute(
            pg.on_conflict_do_update(
                index_elements=list(KEY),
                set_={name: _TABLE.c[name] + pg.excluded[name] for name in TOTALS},
            )
        )
        return
    lite = sqlite_insert(_TABLE).values(
        [
            dict(zip(KEY, key, strict=True)) | dict(zip(TOTALS, totals, strict=True))
            for key, totals in ordered
        ]
    )
    await session.execute(
        lite.on_conflict_do_update(
            index_elements=list(KEY),
            set_={name: _TABLE.c[name] + lite.excluded[name] for name in TOTALS},
        )
    )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


Stretch = tuple[datetime, datetime]


def split_period(start: datetime, end: datetime) -> tuple[tuple[date, date] | None, list[Stretch]]:
    """[start, end) as its whole UTC days [first, last) (None if it holds none) and the
    partial stretches at its edges, which only raw rows can answer."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    first = start.date() if start.time() == time.min else start.date() + timedelta(days=1)
    last = end.date()
    if first >= last:
        return None, [(start, end)] if start < end else []
    edges = [(start, _midnight(first))] if start < _midnight(first) else []
    if _midnight(last) < end:
        edges.append((_midnight(last), end))
    return (first, last), edges


def period_rows(
    session: AsyncSession, organization_id: str, start: datetime, end: datetime, keys: Sequence[str]
) -> Subquery:
    """The organization's usage in [start, end) as rows of `keys` (of `GROUPABLE`) and
    `TOTALS`, whose sums under any grouping by those keys equal the raw rows' own: roll-ups
    for the whole days, raw rows for the partial days at the edges."""
    days, edges = split_period(start, end)
    parts = []
    if days is not None:
        rollup_keys = [_TABLE.c[name] for name in keys]
        parts.append(
            select(
                *(c.label(c.name) for c in rollup_keys),
                *(func.sum(_TABLE.c[name]).label(name) for name in TOTALS),
            )
            .where(
                _TABLE.c.organization_id == organization_id,
                _TABLE.c.day >= days[0],
                _TABLE.c.day < days[1],
            )
            .group_by(*rollup_keys)
        )
    if edges or not parts:
        raw_of: dict[str, SQLColumnExpression[Any]] = {
            "day": day_of(session),
            "user_id": col(UsageRecord.user_id),
            "model_name": col(UsageRecord.model_name),
        }
        raw_keys = [raw_of[name] for name in keys]
        created_at = col(UsageRecord.created_at)
        parts.append(
            select(
                *(raw.label(name) for raw, name in zip(raw_keys, keys, strict=True)),
                func.count().label("requests"),
                *(func.sum(col(getattr(UsageRecord, name))).label(name) for name in SUMMED),
            )
            .where(
                col(UsageRecord.organization_id) == organization_id,
                or_(*(and_(created_at >= a, created_at < b) for a, b in edges))
                if edges
                else false(),
            )
            .group_by(*raw_keys)
        )
    if len(parts) == 1:
        return parts[0].subquery("period_usage")
    return union_all(*parts).subquery("period_usage")


async def rebuild(session: AsyncSession) -> None:
    """Recompute every roll-up from the usage rows, in the caller's transaction: for data
    written around ingestion (bench/seed.py's COPY). Migration 0008 did the same once."""
    day = day_of(session)
    keys = [
        col(UsageRecord.organization_id),
        day,
        col(UsageRecord.user_id),
        col(UsageRecord.model_name),
    ]
    await session.execute(_TABLE.delete())
    await session.execute(
        _TABLE.insert().from_select(
            [*KEY, *TOTALS],
            select(
                *keys,
                func.count(),
                *(func.sum(col(getattr(UsageRecord, name))) for name in SUMMED),
            )
            .where(col(UsageRecord.organization_id).is_not(None))
            .group_by(*keys),
        )
    )
