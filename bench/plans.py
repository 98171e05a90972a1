"""Planning against running: each statement the gateway sends for some benchmark requests, timed
by PostgreSQL under `plan_cache_mode` auto and force_generic_plan (bench/README.md, "Twelfth
pass: plans made once").

    .venv/bin/python bench/plans.py q1,org_overview,user_subscriptions [--log FILE]

Turns PostgreSQL's `log_statement = 'all'` on (ALTER SYSTEM, reloaded; reset at the end), replays
the requests in-process (bench/inprocess.py, schema `bench`), reads the statements and their
parameters back from the server's log (`--log`, Debian's default path by default), and for up to
three parameter sets of each distinct read runs `PREPARE` and eight `EXPLAIN (ANALYZE) EXECUTE`
in each mode, keeping the median of the last five. Prints the planning and execution time summed
over those samples, and the statements whose execution got slower with a generic plan (a plan
that does not fit every key: look at them before keeping force_generic_plan).
Needs a superuser (ALTER SYSTEM): the local server's postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import asyncpg

HERE = Path(__file__).resolve().parent
URL = "postgresql://postgres@127.0.0.1:5432/test"
MODES = ("auto", "force_generic_plan")
SKIPPED = ("SELECT PG_", "WITH RECURSIVE TYPEINFO", "SELECT CURRENT_SCHEMA")
PARAMETER = re.compile(r"\$(\d+) = ('(?:[^']|'')*'|NULL)")


def statements(log: str) -> dict[str, list[list[str]]]:
    """Each distinct read in the log → the parameter lists it was executed with."""
    found: dict[str, list[list[str]]] = {}
    pending: str | None = None
    # Only reads, and not the catalog's or the connection's own (another client of the server
    # may log its statements in the meantime: what does not run on `bench` is skipped later).
    for entry in re.split(r"\n(?=\d{4}-\d\d-\d\d \d)", log):
        executed = re.search(r"LOG:  execute [^:]*: (.*)", entry, re.S)
        if executed:
            sql = executed.group(1).strip()
            if not sql.upper().startswith(("SELECT", "WITH")) or sql.upper().startswith(SKIPPED):
                pending = None
                continue
            found.setdefault(sql, [])
            pending = sql if "$1" in sql else None
            if pending is None:
                found[sql].append([])
            continue
        detail = re.search(r"DETAIL:  parameters: (.*)", entry, re.S)
        if detail and pending is not None:
            found[pending].append([m.group(2) for m in PARAMETER.finditer(detail.group(1))])
            pending = None
    return found


async def timed(
    conn: asyncpg.Connection, sql: str, args: list[str], mode: str
) -> tuple[float, float]:
    """(planning ms, execution ms) of the prepared statement's executions, median of 6th-8th."""
    await conn.execute(f"SET plan_cache_mode = {mode}")
    await conn.execute(f"PREPARE measured AS {sql}")
    try:
        call = f"EXECUTE measured({', '.join(args)})" if args else "EXECUTE measured"
        plans, runs = [], []
        for _ in range(8):
            shown = json.loads(
                await conn.fetchval(f"EXPLAIN (ANALYZE, SUMMARY, FORMAT JSON) {call}")
            )
            plans.append(shown[0].get("Planning Time", 0.0))
            runs.append(shown[0]["Execution Time"])
        return statistics.median(plans[3:]), statistics.median(runs[3:])
    finally:
        await conn.execute("DEALLOCATE measured")


async def compare(found: dict[str, list[list[str]]]) -> None:
    conn = await asyncpg.connect(
        URL, server_settings={"search_path": "bench"}, statement_cache_size=0
    )
    totals = {mode: [0.0, 0.0] for mode in MODES}
    slower = []
    samples = skipped = 0
    for sql, executions in found.items():
        for args in executions[:: max(1, len(executions) // 3)][:3]:
            try:
                result = {mode: await timed(conn, sql, args, mode) for mode in MODES}
            except asyncpg.PostgresError as error:  # another client's statement (another schema)
                skipped += 1
                print(f"skipped ({error.__class__.__name__}): {' '.join(sql.split())[:100]}")
                break
            samples += 1
            for mode, (plan, run) in result.items():
                totals[mode][0] += plan
                totals[mode][1] += run
            auto, generic = result["auto"], result["force_generic_plan"]
            slower.append((generic[1] - auto[1], auto, generic, " ".join(sql.split())[:120]))
    await conn.close()
    print(f"{len(found)} statements ({skipped} skipped), {samples} parameter sets")
    for mode, (plan, run) in totals.items():
        print(
            f"  {mode:20} planning {plan:8.3f} ms  execution {run:8.3f} ms  sum {plan + run:8.3f} ms"
        )
    print("execution slower under the generic plan by more than 0.02 ms:")
    for delta, auto, generic, text in sorted(slower, reverse=True):
        if delta > 0.02:
            print(
                f"  +{delta:.3f} ms (auto {auto[0]:.3f}+{auto[1]:.3f}, generic {generic[0]:.3f}+{generic[1]:.3f})  {text}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("queries", help="comma-separated requests-<query>.tsv names")
    parser.add_argument("--log", default="/var/log/postgresql/postgresql-15-main.log")
    parser.add_argument("--count", default="16", help="measured requests each (bench/inprocess.py)")
    args = parser.parse_args()
    log = Path(args.log)

    def system(statement: str) -> None:
        subprocess.run(
            ["psql", URL, "-qAtc", statement, "-c", "SELECT pg_reload_conf()"],
            check=True,
            capture_output=True,
        )

    start = log.stat().st_size
    system("ALTER SYSTEM SET log_statement = 'all'")
    try:
        subprocess.run(
            [sys.executable, str(HERE / "inprocess.py"), args.queries, args.count], check=True
        )
    finally:
        system("ALTER SYSTEM RESET log_statement")
    with log.open("rb") as f:
        f.seek(start)
        text = f.read().decode("utf-8", "replace")
    asyncio.run(compare(statements(text)))


if __name__ == "__main__":
    main()
