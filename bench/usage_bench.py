"""Usage metering at scale on PostgreSQL: query plans of the hot reads, ingestion events/s.

    .venv/bin/python bench/usage_bench.py                 # seed (about a minute), then measure
    .venv/bin/python bench/usage_bench.py --reuse         # migrate the existing seed, measure
    .venv/bin/python bench/usage_bench.py --schema bench_rollup_10m --orgs 100 --copies 10
                                                          # 10 M rows (bench/README.md, Roll-ups)
    .venv/bin/python bench/usage_bench.py --reuse --skip-plans --schema bench_usage_ingest
                                                          # ingestion only, in another schema

Seeds its own schema (`bench_usage`, so the load benchmark's `bench` schema is left alone)
with bench/seed.py's generator: 10,000 users, 1,000 organizations x 20 members and
1,000,000 usage records over 90 days, by COPY. Then, through the real resolvers (the SQL they
send is captured from the engine and replayed under EXPLAIN (ANALYZE, BUFFERS)), it prints
the plans of: a user's history page (first page), a member's page in an
organization, an organization's 30-day aggregation by day, model and member, and its metrics,
each from raw rows and from the daily roll-ups (`usage_aggregation`), with their median times.
Last it measures ingestion through `resolvers.usage.record_usages` (batches of 1,000 events,
one transaction each, with their debits; half of them without the roll-ups' upsert, for its
cost) and through `record_usage` one event at a time, with the CPU each batch costs this
process and its PostgreSQL backend (read from /proc, so with the server on this host), the
backend's split by statement.
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
from resolvers import permissions, usage  # noqa: E402
from resolvers.context import Context  # noqa: E402
from resolvers.pagination import PageArgs  # noqa: E402
from resolvers.usage import rollups  # noqa: E402

SCHEMA = "bench_usage"


def seed_schema(url: str, schema: str, *, rows: int = 1_000_000, orgs: int = 1_000) -> None:
    """bench/seed.py's rows (no payments, keys for owners only) COPYed into `schema`."""
    args = argparse.Namespace(
        seed=20261125,
        anchor=seed.DEFAULT_ANCHOR,
        users=10_000,
        orgs=orgs,
        members_per_org=20,
        usages=rows,
        org_share=0.6,
        payments=0,
        other_keys=0,
        # bench/seed.py's large organizations are for the load benchmark's pages: none here.
        large_orgs=0,
        large_members=0,
        large_usages=0,
    )
    started = time.perf_counter()
    data = seed.Data(args)
    data.build()
    print(f"generated rows in {time.perf_counter() - started:.1f}s")
    seed.SCHEMA = schema  # seed.py's helpers read the schema name from this global
    asyncio.run(seed.recreate_schema(url))
    asyncio.run(seed.copy_all(url, data))
    print(f"seeded schema {schema!r} in {time.perf_counter() - started:.1f}s")


async def copy_usages(url: str, schema: str, copies: int) -> None:
    """Make the seeded usage rows `copies` times as many: each copy repeats every row at the
    same time, user, organization and model with a new id (the first character of its random
    part set to a lowercase letter, which no ULID holds: a, b, ... for copy 1, 2, ...) and
    generation id. One INSERT with indexes and foreign-key checks off, then the indexes."""
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    columns = ", ".join(
        c if c != "metadata" else '"metadata"' for c in seed.COLUMNS["usage_records"]
    )
    picked = columns.replace(
        "id, generation_id,",
        "left(id, 14) || chr(96 + k) || substr(id, 16), generation_id || '_c' || k::text,",
        1,
    )
    try:
        started = time.perf_counter()
        constraints = await conn.fetch(
            "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
            "WHERE conrelid = 'usage_records'::regclass AND contype IN ('p', 'u')"
        )
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 "
            "AND tablename = 'usage_records' AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE conrelid = 'usage_records'::regclass)",
            schema,
        )
        for row in constraints:
            await conn.execute(f'ALTER TABLE usage_records DROP CONSTRAINT "{row["conname"]}"')
        for row in indexes:
            await conn.execute(f'DROP INDEX "{row["indexname"]}"')
        await conn.execute("SET session_replication_role = replica")  # no foreign-key checks
        await conn.execute("DELETE FROM usage_records WHERE generation_id LIKE '%\\_c%'")
        await conn.execute(
            f"INSERT INTO usage_records ({columns}) SELECT {picked} FROM usage_records, "
            f"generate_series(1, {copies - 1}) AS k"
        )
        await conn.execute("SET session_replication_role = DEFAULT")
        print(f"  {copies - 1} copies of the usage rows  {time.perf_counter() - started:6.1f}s")
        for row in constraints:
            await conn.execute(
                f'ALTER TABLE usage_records ADD CONSTRAINT "{row["conname"]}" {row["def"]}'
            )
        for row in indexes:
            await conn.execute(row["indexdef"])
        print(f"  and their indexes  {time.perf_counter() - started:6.1f}s")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def migrate(url: str, schema: str) -> None:
    """Bring a reused seed to the current migrations (e.g. a new index)."""
    engine = create_engine(url, search_path=schema)
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE usage_records"))
    finally:
        await engine.dispose()
    await vacuum_rollups(url, schema)


async def vacuum_rollups(url: str, schema: str) -> None:
    """Set the visibility map, for index-only reads of the roll-ups (autovacuum's work)."""
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        await conn.execute("VACUUM ANALYZE usage_daily")
    finally:
        await conn.close()


async def rebuild_rollups(url: str, schema: str) -> None:
    started = time.perf_counter()
    await seed.rebuild_rollups(url, schema)
    await vacuum_rollups(url, schema)
    print(f"  rebuilt the daily roll-ups in {time.perf_counter() - started:.1f}s")


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
    if isinstance(parameters, list):  # one statement's positional parameters, not many
        parameters = tuple(parameters)
    async with engine.connect() as conn:
        # Warm once so the plan shows steady-state buffers, as a busy server would see them.
        await conn.exec_driver_sql(statement, parameters)
        # The fastest of five: a loaded machine's other work only ever adds time.
        plans = []
        for _ in range(5):
            rows = (
                await conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, parameters
                )
            ).all()
            plans.append([r[0] for r in rows])
    plan = "\n".join(min(plans, key=lambda lines: float(lines[-1].split()[2])))
    sql = " ".join(statement.split())
    out = f"### {title}\n\n```sql\n{sql}\n-- parameters: {parameters}\n```\n\n```\n{plan}\n```\n"
    print(out)
    return out


async def plans(url: str, schema: str, *, runs: int) -> list[str]:
    """The plans of the hot usage reads; the aggregations on raw rows and on roll-ups, each
    with its median time over `runs` calls (through the resolver, statements included)."""
    settings = {
        mode: Settings(
            database_url=url, database_schema=schema, environment="test", usage_aggregation=mode
        )
        for mode in ("raw", "rollups")
    }
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
            member_id = (
                await conn.execute(
                    text(
                        "SELECT m.id FROM members m JOIN usage_records u "
                        "ON u.organization_id = m.organization_id AND u.user_id = m.user_id "
                        "WHERE m.organization_id = :org GROUP BY m.id ORDER BY count(*) DESC "
                        "LIMIT 1"
                    ),
                    {"org": heavy_org},
                )
            ).scalar_one()
            # The aggregation's 30 days end at the seed's newest usage (a midnight: whole days
            # only), or at 18:00 the day before (partial days at both edges).
            end = datetime.fromisoformat(seed.DEFAULT_ANCHOR).astimezone(UTC)
            periods = {
                "whole days": (end - timedelta(days=30), end),
                "edges at 18:00": (end - timedelta(days=30, hours=6), end - timedelta(hours=6)),
            }
            counts = (
                await conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM usage_records), "
                        "(SELECT count(*) FROM usage_records WHERE user_id = :u), "
                        "(SELECT count(*) FROM usage_records WHERE organization_id = :o), "
                        "(SELECT count(*) FROM usage_records WHERE organization_id = :o "
                        "AND created_at >= :s AND created_at < :e), "
                        "(SELECT count(*) FROM usage_daily), "
                        "(SELECT count(*) FROM usage_daily WHERE organization_id = :o "
                        "AND day >= :s AND day < :e)"
                    ),
                    {"u": heavy_user, "o": heavy_org, "s": end - timedelta(days=30), "e": end},
                )
            ).one()
        report = (
            f"Table: {counts[0]:,} usage rows, {counts[4]:,} daily roll-ups. Busiest user: "
            f"{counts[1]:,} rows; busiest organization: {counts[2]:,} rows, {counts[3]:,} of "
            f"them in the 30 days ({counts[5]:,} roll-ups).\n"
        )
        print(report)
        out.append(report)

        def as_(principal: Principal, mode: str = "rollups") -> Context:
            return context(settings[mode], factory, principal)

        as_user = as_(Principal(user_id=heavy_user, via="api_key"))
        first = PageArgs(first=50)

        async def member_page() -> Any:
            access = await permissions.member_access(owner_ctx, heavy_org, showing_member=member_id)
            return await usage.member_usages_page(access, member_id, first)

        owner_ctx = as_(Principal(user_id=owner, via="api_key"))
        cases: list[tuple[str, Context, Callable[[], Awaitable[Any]], int]] = [
            (
                "User history, first page (GET /users/{id}/usages)",
                as_user,
                lambda: usage.user_usages_page(permissions.personal_access(as_user), first),
                -1,
            ),
            ("Member's usage page", owner_ctx, member_page, -1),
        ]
        timings: list[str] = []
        for mode in ("raw", "rollups"):
            ctx = as_(Principal(user_id=owner, via="api_key"), mode)
            for label, (start, stop) in periods.items():
                for group_by in ("day", "model", "member"):

                    async def summary(
                        ctx: Context = ctx, g: str = group_by, p: Any = (start, stop)
                    ) -> Any:
                        access = await permissions.manager_access(ctx, heavy_org)
                        return await usage.organization_usage_summary(access, p, group_by=g)

                    title = f"30-day summary by {group_by}, {label}, {mode}"
                    which = -2 if group_by == "member" else -1
                    cases.append((title, ctx, summary, which))

                async def metrics(ctx: Context = ctx, p: Any = (start, stop)) -> Any:
                    access = await permissions.manager_access(ctx, heavy_org)
                    return await usage.organization_metrics(access, p)

                cases.append(
                    (f"30-day metrics (totals, active members), {label}, {mode}", ctx, metrics, -2)
                )
                cases.append((f"30-day metrics (top models), {label}, {mode}", ctx, metrics, -1))
        for title, ctx, action, which in cases:
            ctx.reset_loaders()
            statements = await captured.run(action)
            await ctx.close()
            statement, parameters = statements[which]
            out.append(await explain(engine, title, statement, parameters))
            if "summary" in title or "top models" in title:
                elapsed = []
                for _ in range(runs):
                    ctx.reset_loaders()
                    started = time.perf_counter()
                    await action()
                    elapsed.append((time.perf_counter() - started) * 1000)
                    await ctx.close()
                name = title.replace(" (top models)", "")
                timings.append(
                    f"| {name} | {statistics.median(elapsed):.2f} | {min(elapsed):.2f} |"
                )
        table = "\n".join(
            [f"| call (median of {runs}) | ms | min ms |", "|---|---:|---:|", *timings]
        )
        print(table)
        out.append(table + "\n")
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


async def ingestion(
    url: str, schema: str, *, batches: int, batch_size: int, singles: int, plan_cache_mode: str
) -> str:
    settings = Settings(database_url=url, database_schema=schema, environment="test")
    # As the gateway's engine: PostgreSQL plans its prepared statements as the setting says.
    engine = create_engine(url, search_path=schema, plan_cache_mode=plan_cache_mode)
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
    rates: list[float] = []
    rates_without: list[float] = []
    # CPU seconds of this process (Python, SQLAlchemy, asyncpg) and of the PostgreSQL backend
    # that served each batch, summed over the measured batches.
    client_cpu = server_cpu = 0.0
    try:
        # One warm-up batch (connections, statement caches), not counted.
        ctx = context(settings, factory, service)
        await usage.record_usages(ctx, [make_event() for _ in range(batch_size)])
        await ctx.close()
        kept_by_ingestion = rollups.add_usage

        async def no_rollups(*_: Any) -> None:
            return None

        for n in range(batches):
            # Batches take turns with and without the roll-ups' upsert (for its cost alone).
            without = n % 2 == 1
            rollups.add_usage = no_rollups if without else kept_by_ingestion  # type: ignore[assignment]
            events = [make_event() for _ in range(batch_size)]
            ctx = context(settings, factory, service)
            # Asked in the batch's own transaction, so it names the connection the batch uses.
            backend = (await ctx.session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            server_before = backend_cpu(backend)
            by_statement.backend = backend
            client_before = time.process_time()
            started = time.perf_counter()
            try:
                results = await usage.record_usages(ctx, events)
            finally:
                rollups.add_usage = kept_by_ingestion  # type: ignore[method-assign]
            elapsed = time.perf_counter() - started
            client_cpu += time.process_time() - client_before
            server_cpu += backend_cpu(backend) - server_before
            by_statement.backend = None
            await ctx.close()
            assert not any(r.duplicate for r in results)
            (rates_without if without else rates).append(batch_size / elapsed)
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
        f"debits and, in {len(rates)} of them, the roll-ups' upsert): median "
        f"{statistics.median(rates):,.0f} events/s "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f}).\n"
        f"All {batches} batches: median {statistics.median(rates + rates_without):,.0f} "
        f"events/s.\n"
        f"The batches taking turns without the roll-ups' upsert: median "
        f"{statistics.median(rates_without):,.0f} events/s "
        f"(min {min(rates_without):,.0f}, max {max(rates_without):,.0f}).\n"
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
    parser.add_argument("--rows", type=int, default=1_000_000, help="usage rows to generate")
    parser.add_argument("--orgs", type=int, default=1_000, help="organizations (20 members each)")
    parser.add_argument(
        "--copies", type=int, default=1, help="repeat the generated usage rows this many times"
    )
    parser.add_argument("--seed-only", action="store_true", help="seed, measure nothing")
    parser.add_argument(
        "--rebuild-rollups", action="store_true", help="recompute the daily roll-ups"
    )
    parser.add_argument("--runs", type=int, default=15, help="timed calls per aggregation")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--singles", type=int, default=500)
    parser.add_argument("--skip-plans", action="store_true", help="measure ingestion only")
    parser.add_argument(
        "--plan-cache-mode",
        default=Settings.model_fields["database_plan_cache_mode"].default,
        choices=["auto", "force_generic_plan", "force_custom_plan"],
        help="PostgreSQL's plan_cache_mode for ingestion (default: the gateway's)",
    )
    parser.add_argument("--out", type=Path, help="also write the report (Markdown) here")
    args = parser.parse_args(argv)
    if args.reuse:
        asyncio.run(migrate(args.url, args.schema))
    else:
        seed_schema(args.url, args.schema, rows=args.rows, orgs=args.orgs)
    if args.copies > 1:
        asyncio.run(copy_usages(args.url, args.schema, args.copies))
    if args.copies > 1 or args.rebuild_rollups:
        # The copies go around ingestion, which keeps the roll-ups: compute them from the rows.
        asyncio.run(rebuild_rollups(args.url, args.schema))
    if args.seed_only:
        return 0
    sections = [] if args.skip_plans else asyncio.run(plans(args.url, args.schema, runs=args.runs))
    if args.batches:
        sections.append(
            asyncio.run(
                ingestion(
                    args.url,
                    args.schema,
                    batches=args.batches,
                    batch_size=args.batch_size,
                    singles=args.singles,
                    plan_cache_mode=args.plan_cache_mode,
                )
            )
        )
    if args.out:
        args.out.write_text("\n".join(sections))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
