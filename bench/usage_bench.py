"""Usage metering at scale on PostgreSQL: query plans of the hot reads, ingestion events/s.

    .venv/bin/python bench/usage_bench.py                 # seed (about a minute), then measure
    .venv/bin/python bench/usage_bench.py --reuse         # migrate the existing seed, measure
    .venv/bin/python bench/usage_bench.py --reuse --skip-plans --schema bench_usage_ingest
                                                          # ingestion only, in another schema

Seeds its own schema (`bench_usage`, so the load benchmark's `bench` schema is left alone)
with bench/seed.py's generator: 10,000 users, 1,000 organizations x 20 members and
1,000,000 usage records over 90 days, by COPY. Then, through the real resolvers (the SQL they
send is captured from the engine and replayed under EXPLAIN (ANALYZE, BUFFERS)), it prints
the plans of: a user's history page (first and next page), a member's page in an
organization, an organization's 30-day aggregation by day, model and member, and its metrics.
Last it measures ingestion through `resolvers.usage.record_usages` (batches of 1,000 events,
one transaction each, with their debits) and through `record_usage` one event at a time, with
the CPU each batch costs this process and its PostgreSQL backend (read from /proc, so with the
server on this host), the backend's split by statement.
Nothing here is asserted: the figures go to stdout and bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from sqlalchemy import event, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

import bench.seed as seed  # noqa: E402
from gateway.auth import Principal  # noqa: E402
from gateway.db.engine import create_engine  # noqa: E402
from gateway.db.migrate import upgrade  # noqa: E402
from gateway.db.session import create_session_factory  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from resolvers import usage  # noqa: E402
from resolvers.context import Context  # noqa: E402
from resolvers.pagination import PageArgs  # noqa: E402

SCHEMA = "bench_usage"


def seed_schema(url: str, schema: str) -> None:
    """bench/seed.py's rows (no payments, keys for owners only) COPYed into `schema`."""
    args = argparse.Namespace(
        seed=20261125,
        anchor=seed.DEFAULT_ANCHOR,
        users=10_000,
        orgs=1_000,
        members_per_org=20,
        usages=1_000_000,
        org_share=0.6,
        payments=0,
        other_keys=0,
    )
    started = time.perf_counter()
    data = seed.Data(args)
    data.build()
    print(f"generated rows in {time.perf_counter() - started:.1f}s")
    seed.SCHEMA = schema  # seed.py's helpers read the schema name from this global
    asyncio.run(seed.recreate_schema(url))
    asyncio.run(seed.copy_all(url, data))
    print(f"seeded schema {schema!r} in {time.perf_counter() - started:.1f}s")


async def migrate(url: str, schema: str) -> None:
    """Bring a reused seed to the current migrations (e.g. a new index)."""
    engine = create_engine(url, search_path=schema)
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE usage_records"))
    finally:
        await engine.dispose()


class Captured:
    """The statements an engine sends, with their driver parameters, while `active`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.active = False
        self.statements: list[tuple[str, Any]] = []

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if self.active:
                self.statements.append((statement, parameters))

    async def run(self, action: Callable[[], Awaitable[Any]]) -> list[tuple[str, Any]]:
        self.statements = []
        self.active = True
        try:
            await action()
        finally:
            self.active = False
        return self.statements


def context(settings: Settings, factory: Any, principal: Principal) -> Context:
    return Context(settings=settings, session_factory=factory, principal=principal)


async def explain(engine: AsyncEngine, title: str, statement: str, parameters: Any) -> str:
    async with engine.connect() as conn:
        # Warm once so the plan shows steady-state buffers, as a busy server would see them.
        await conn.exec_driver_sql(statement, parameters)
        rows = (
            await conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, parameters
            )
        ).all()
    plan = "\n".join(r[0] for r in rows)
    sql = " ".join(statement.split())
    out = f"### {title}\n\n```sql\n{sql}\n-- parameters: {parameters}\n```\n\n```\n{plan}\n```\n"
    print(out)
    return out


async def plans(url: str, schema: str) -> list[str]:
    settings = Settings(database_url=url, database_schema=schema, environment="test")
    engine = create_engine(url, search_path=schema)
    factory = create_session_factory(engine)
    captured = Captured(engine)
    out: list[str] = []
    try:
        async with engine.connect() as conn:
            heavy_user = (
                await conn.execute(
                    text(
                        "SELECT user_id FROM usage_records GROUP BY user_id "
                        "ORDER BY count(*) DESC LIMIT 1"
                    )
                )
            ).scalar_one()
            heavy_org, owner = (
                await conn.execute(
                    text(
                        "SELECT u.organization_id, m.user_id FROM usage_records u "
                        "JOIN members m ON m.organization_id = u.organization_id "
                        "AND m.role = 'owner' WHERE u.organization_id IS NOT NULL "
                        "GROUP BY u.organization_id, m.user_id ORDER BY count(*) DESC LIMIT 1"
                    )
                )
            ).one()
            member_row = (
                await conn.execute(
                    text(
                        "SELECT m.id, count(*) FROM members m JOIN usage_records u "
                        "ON u.organization_id = m.organization_id AND u.user_id = m.user_id "
                        "WHERE m.organization_id = :org GROUP BY m.id ORDER BY 2 DESC LIMIT 1"
                    ),
                    {"org": heavy_org},
                )
            ).one()
            counts = (
                await conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM usage_records), "
                        "(SELECT count(*) FROM usage_records WHERE user_id = :u), "
                        "(SELECT count(*) FROM usage_records WHERE organization_id = :o)"
                    ),
                    {"u": heavy_user, "o": heavy_org},
                )
            ).one()
        print(
            f"usage_records: {counts[0]:,} rows; user {heavy_user}: {counts[1]:,} rows; "
            f"org {heavy_org}: {counts[2]:,} rows; member {member_row[0]}: {member_row[1]:,}\n"
        )
        out.append(
            f"Table: {counts[0]:,} usage rows. Busiest user: {counts[1]:,} rows; busiest "
            f"organization: {counts[2]:,} rows (its busiest member: {member_row[1]:,}).\n"
        )
        as_user = context(settings, factory, Principal(user_id=heavy_user, via="api_key"))
        as_owner = context(settings, factory, Principal(user_id=owner, via="api_key"))
        first = PageArgs(first=50)
        page = await usage.user_usages_page(as_user, heavy_user, first)
        as_user.reset_loaders()
        as_owner.reset_loaders()
        # Anchor the aggregation's 30 days at the seed's newest usage, so the period is full.
        end = datetime.fromisoformat(seed.DEFAULT_ANCHOR).astimezone(UTC)
        start = end - timedelta(days=30)
        cases: list[tuple[str, Context, Callable[[], Awaitable[Any]], int]] = [
            (
                "User history, first page (GET /users/{id}/usages)",
                as_user,
                lambda: usage.user_usages_page(as_user, heavy_user, first),
                -1,
            ),
            (
                "User history, next page (?cursor=)",
                as_user,
                lambda: usage.user_usages_page(
                    as_user, heavy_user, PageArgs(first=50, after=page.items[-1].id)
                ),
                -1,
            ),
            (
                "Member's usage page (GET /organizations/{orgId}/members/{memberId}/usages)",
                as_owner,
                lambda: usage.member_usages_page(as_owner, heavy_org, member_row[0], first),
                -2,
            ),
            *[
                (
                    f"Organization 30-day aggregation, groupBy={group_by}",
                    as_owner,
                    (
                        lambda group_by=group_by: usage.organization_usage_summary(
                            as_owner, heavy_org, start=start, end=end, group_by=group_by
                        )
                    ),
                    -1 if group_by != "member" else -2,
                )
                for group_by in ("day", "model", "member")
            ],
            (
                "Organization metrics, 30 days (totals and active members)",
                as_owner,
                lambda: usage.organization_metrics(as_owner, heavy_org, start=start, end=end),
                -2,
            ),
            (
                "Organization metrics, 30 days (top models)",
                as_owner,
                lambda: usage.organization_metrics(as_owner, heavy_org, start=start, end=end),
                -1,
            ),
        ]
        for title, ctx, action, which in cases:
            ctx.reset_loaders()
            statements = await captured.run(action)
            await ctx.close()
            statement, parameters = statements[which]
            out.append(await explain(engine, title, statement, parameters))
    finally:
        await engine.dispose()
    return out


def backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) a PostgreSQL backend on this host has used so far; 0 when
    its /proc entry is not readable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of stat(5); the text after ")" starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BackendCpuByStatement:
    """PostgreSQL backend CPU per statement (its first words) while `backend` is set: read
    from /proc around each statement, so only with the server on this host (10 ms ticks:
    meaningful summed over many batches)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.backend: int | None = None
        self.seconds: dict[str, float] = {}
        self._started = 0.0

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _before(*_: Any) -> None:
            if self.backend is not None:
                self._started = backend_cpu(self.backend)

        @event.listens_for(engine.sync_engine, "after_cursor_execute")
        def _after(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if self.backend is not None:
                key = " ".join(statement.split())[:60]
                spent = backend_cpu(self.backend) - self._started
                self.seconds[key] = self.seconds.get(key, 0.0) + spent

    def report(self, batches: int) -> str:
        rows = sorted(self.seconds.items(), key=lambda item: -item[1])
        return "".join(f"  {s / batches * 1000:6.1f} ms  {key}\n" for key, s in rows)


async def ingestion(url: str, schema: str, *, batches: int, batch_size: int, singles: int) -> str:
    settings = Settings(database_url=url, database_schema=schema, environment="test")
    engine = create_engine(url, search_path=schema)
    by_statement = BackendCpuByStatement(engine)
    factory = create_session_factory(engine)
    rng = random.Random(7)
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        pairs = [
            (r["organization_id"], r["user_id"])
            for r in await conn.fetch("SELECT organization_id, user_id FROM members")
        ]
        users = [r["id"] for r in await conn.fetch("SELECT id FROM users")]
    finally:
        await conn.close()
    stamp = f"{time.time_ns():x}"
    counter = iter(range(10**9))

    def make_event() -> usage.UsageEvent:
        if rng.random() < 0.6:
            org, user = pairs[rng.randrange(len(pairs))]
        else:
            org, user = None, users[rng.randrange(len(users))]
        prompt, completion = rng.randrange(10, 4000), rng.randrange(0, 2000)
        return usage.UsageEvent(
            generation_id=f"gen_ingest_{stamp}_{next(counter)}",
            provider="openai",
            model=rng.choice(("gpt-4o", "gpt-4o-mini", "claude-sonnet-4")),
            model_type="chat",
            user_id=user,
            organization_id=org,
            tokens={"prompt_tokens": prompt, "completion_tokens": completion},
            cost_usd=(prompt * 3 + completion * 12) / 10 / 1_000_000,
            credits=(prompt * 3 + completion * 12) // 10,
            metadata={"bench": True},
        )

    service = Principal(user_id=None, via="service")
    rates = []
    # CPU seconds of this process (Python, SQLAlchemy, asyncpg) and of the PostgreSQL backend
    # that served each batch, summed over the measured batches.
    client_cpu = server_cpu = 0.0
    try:
        # One warm-up batch (connections, statement caches), not counted.
        ctx = context(settings, factory, service)
        await usage.record_usages(ctx, [make_event() for _ in range(batch_size)])
        await ctx.close()
        for _ in range(batches):
            events = [make_event() for _ in range(batch_size)]
            ctx = context(settings, factory, service)
            # Asked in the batch's own transaction, so it names the connection the batch uses.
            backend = (await ctx.session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            server_before = backend_cpu(backend)
            by_statement.backend = backend
            client_before = time.process_time()
            started = time.perf_counter()
            results = await usage.record_usages(ctx, events)
            elapsed = time.perf_counter() - started
            client_cpu += time.process_time() - client_before
            server_cpu += backend_cpu(backend) - server_before
            by_statement.backend = None
            await ctx.close()
            assert not any(r.duplicate for r in results)
            rates.append(batch_size / elapsed)
        # A retry of a whole batch: all duplicates, nothing written.
        ctx = context(settings, factory, service)
        started = time.perf_counter()
        replay = await usage.record_usages(ctx, events)
        replay_rate = batch_size / (time.perf_counter() - started)
        await ctx.close()
        assert all(r.duplicate for r in replay)
        started = time.perf_counter()
        for _ in range(singles):
            ctx = context(settings, factory, service)
            await usage.record_usage(ctx, make_event())
            await ctx.close()
        single_rate = singles / (time.perf_counter() - started)
    finally:
        await engine.dispose()
    total = batches * batch_size
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    report = (
        f"Machine: {os.cpu_count()} CPUs, load average {load} at the end of the run.\n"
        f"Batches of {batch_size:,} events through `record_usages` ({batches} batches, "
        f"{total:,} events, 60% organization usage, each batch one transaction with its "
        f"debits): median {statistics.median(rates):,.0f} events/s "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f}).\n"
        f"CPU per 1,000 events: {client_cpu / batches * 1000:,.0f} ms in this process "
        f"(Python, SQLAlchemy, asyncpg), {server_cpu / batches * 1000:,.0f} ms in the "
        f"PostgreSQL backend{'' if server_cpu else ' (not readable: server on another host?)'}"
        f", by statement per 1,000 events (the commit is not a statement):\n"
        f"{by_statement.report(batches)}"
        f"Replaying a whole batch (all duplicates): {replay_rate:,.0f} events/s.\n"
        f"One event per call through `record_usage` ({singles} calls, one transaction "
        f"each): {single_rate:,.0f} events/s.\n"
    )
    print(report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=seed.DEFAULT_URL)
    parser.add_argument("--schema", default=SCHEMA)
    parser.add_argument("--reuse", action="store_true", help="skip seeding")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--singles", type=int, default=500)
    parser.add_argument("--skip-plans", action="store_true", help="measure ingestion only")
    parser.add_argument("--out", type=Path, help="also write the report (Markdown) here")
    args = parser.parse_args(argv)
    if args.reuse:
        asyncio.run(migrate(args.url, args.schema))
    else:
        seed_schema(args.url, args.schema)
    sections = [] if args.skip_plans else asyncio.run(plans(args.url, args.schema))
    sections.append(
        asyncio.run(
            ingestion(
                args.url,
                args.schema,
                batches=args.batches,
                batch_size=args.batch_size,
                singles=args.singles,
            )
        )
    )
    if args.out:
        args.out.write_text("\n".join(sections))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
