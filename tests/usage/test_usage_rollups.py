"""Daily usage roll-ups: kept by ingestion, read for whole days, and answering exactly as the
raw usage rows do (summary by day, model and member; metrics with top models)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import select, update

from gateway.auth import Principal
from gateway.db import models
from gateway.db.migrate import alembic_config
from resolvers import permissions, usage
from resolvers.context import Context
from resolvers.usage import rollups
from resolvers.usage.aggregation import AggregationMismatch
from resolvers.usage.measures import TOTALS
from tests.conftest import Env
from tests.usage.helpers import event, ingest_ok

MODELS = ["gpt-4o", "claude-sonnet", "llama-3"]
DAYS = 6


def _z(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def _world(env: Env, rng: random.Random) -> tuple[str, str, datetime]:
    """An organization of three with usage over the last `DAYS` UTC days, ingested in several
    batches (so later batches add to roll-ups the earlier ones made) with one batch replayed,
    plus personal usage and another organization's. Returns owner, organization, today 00:00."""
    owner = await env.user()
    org_id = await env.organization(owner)
    people = [owner, await env.member(org_id, "admin"), await env.member(org_id)]
    elsewhere = await env.organization(people[2], "Elsewhere")
    now = datetime.now(UTC)
    today = datetime.combine(now.date(), time.min, tzinfo=UTC)
    for _ in range(4):
        events = []
        for _ in range(40):
            who = rng.choice(people)
            where = rng.choices([org_id, None, elsewhere], weights=[8, 1, 1])[0]
            if where == elsewhere:
                who = people[2]
            draw = rng.random()
            if draw < 0.05:  # on a day's boundary
                created = today - timedelta(days=rng.randint(0, DAYS))
            elif draw < 0.15:  # today, before now
                created = now - timedelta(seconds=rng.random() * (now - today).total_seconds())
            else:
                created = today - timedelta(seconds=rng.randint(1, DAYS * 86_400))
            events.append(
                event(
                    who.user_id,
                    organizationId=where,
                    model=rng.choice(MODELS),
                    promptTokens=rng.randint(0, 5_000),
                    completionTokens=rng.randint(0, 2_000),
                    costUsd=round(rng.uniform(0, 0.05), 6),
                    credits=rng.randint(0, 90_000),
                    createdAt=_z(created),
                )
            )
        await ingest_ok(env, *events)
    await ingest_ok(env, *events)  # a replay: all duplicates, added to nothing
    return str(owner.user_id), org_id, today


async def _answers(env: Env, user_id: str, org_id: str, period: Any, mode: str) -> list[Any]:
    """Every group-by's summary and the metrics over `period`, with `usage_aggregation=mode`."""
    settings = env.settings.model_copy(update={"usage_aggregation": mode})
    ctx = Context(
        settings=settings,
        session_factory=env.sessions,
        principal=Principal(user_id=user_id, via="api_key"),
    )
    try:
        access = await permissions.manager_access(ctx, org_id)
        answers: list[Any] = []
        for group_by in usage.GROUP_BYS:
            found = await usage.organization_usage_summary(access, period, group_by=group_by)
            answers.append([(b.key, b.totals.sums) for b in found.items])
            answers.append(found.totals.sums)
        metrics = await usage.organization_metrics(access, period)
        answers.append((metrics.totals.sums, metrics.active_members, metrics.top_models))
        return answers
    finally:
        await ctx.close()


def _periods(rng: random.Random, today: datetime) -> list[tuple[datetime, datetime]]:
    """Whole days, partial edges on either side or both, within one day, empty, before any
    usage, and random ones (some starting or ending at midnight)."""
    day = timedelta(days=1)
    fixed = [
        (today - 30 * day, today + day),
        (today - 3 * day, today),
        (today - 3 * day + timedelta(hours=5), today),
        (today - 3 * day, today - timedelta(hours=7, seconds=3)),
        (today - 4 * day + timedelta(hours=13), today + timedelta(minutes=90)),
        (today - 2 * day + timedelta(hours=2), today - 2 * day + timedelta(hours=20)),
        (today - 2 * day + timedelta(hours=2), today - 2 * day + timedelta(hours=2)),
        (today - day, today - day),
        (today - 60 * day, today - 40 * day + timedelta(hours=3)),
        (today, datetime.now(UTC) + timedelta(minutes=1)),
    ]
    randomized = []
    for _ in range(12):
        start = today - timedelta(seconds=rng.randrange((DAYS + 1) * 86_400))
        end = start + timedelta(seconds=rng.randrange(5 * 86_400))
        if rng.random() < 0.3:
            start = datetime.combine(start.date(), time.min, tzinfo=UTC)
        if rng.random() < 0.3:
            end = datetime.combine(end.date(), time.min, tzinfo=UTC)
        randomized.append((start, max(start, end)))
    return fixed + randomized


async def test_roll_ups_answer_as_the_raw_rows_for_any_period(env: Env) -> None:
    rng = random.Random(20)
    owner, org_id, today = await _world(env, rng)
    nonempty = 0
    for period in _periods(rng, today):
        raw = await _answers(env, owner, org_id, period, "raw")
        assert await _answers(env, owner, org_id, period, "rollups") == raw, period
        nonempty += raw[-1][0]["requests"] > 0
    assert nonempty >= 10


async def test_ingestion_keeps_the_roll_ups_that_a_rebuild_computes(env: Env) -> None:
    await _world(env, random.Random(21))
    columns = [getattr(models.UsageDaily, name) for name in (*rollups.KEY, *TOTALS)]
    kept = sorted(tuple(row) for row in await _rows(env, columns))
    assert kept
    async with env.sessions() as session:
        await rollups.rebuild(session)
        await session.commit()
    assert sorted(tuple(row) for row in await _rows(env, columns)) == kept


async def test_the_migration_backfills_the_roll_ups_from_the_usage_rows(env: Env) -> None:
    await _world(env, random.Random(24))
    columns = [getattr(models.UsageDaily, name) for name in (*rollups.KEY, *TOTALS)]
    kept = sorted(tuple(row) for row in await _rows(env, columns))
    assert kept
    for revision in ("0007", "head"):
        async with env.state.engine.begin() as conn:
            await conn.run_sync(_migrate, revision)
    assert sorted(tuple(row) for row in await _rows(env, columns)) == kept


def _migrate(connection: Any, revision: str) -> None:
    if revision == "head":
        command.upgrade(alembic_config(connection), revision)
    else:
        command.downgrade(alembic_config(connection), revision)


async def _rows(env: Env, columns: list[Any]) -> list[Any]:
    async with env.sessions() as session:
        return list((await session.execute(select(*columns))).all())


async def test_whole_days_read_roll_ups_and_no_usage_rows(env: Env) -> None:
    owner, org_id, today = await _world(env, random.Random(22))
    with env.counter.counting() as statements:
        await _answers(env, owner, org_id, (today - timedelta(days=5), today), "rollups")
    reads = [s for s in statements if "usage_daily" in s]
    assert len(reads) == 5  # a summary per group-by, the metrics' totals and top models
    assert not any("usage_records" in s for s in statements)


async def test_verify_mode_fails_a_read_when_roll_ups_and_rows_differ(env: Env) -> None:
    owner, org_id, today = await _world(env, random.Random(23))
    async with env.sessions() as session:
        await session.execute(
            update(models.UsageDaily).values(requests=models.UsageDaily.requests + 1)
        )
        await session.commit()
    with pytest.raises(AggregationMismatch):
        await _answers(env, owner, org_id, (today - timedelta(days=5), today), "verify")


def test_roll_ups_keep_every_usage_total() -> None:
    table = models.UsageDaily.__table__  # type: ignore[attr-defined]
    assert [c.name for c in table.columns] == [*rollups.KEY, *TOTALS]
    (covering,) = table.indexes
    assert covering.dialect_options["postgresql"]["include"] == ["user_id", "model_name", *TOTALS]
