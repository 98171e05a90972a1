"""In-process CPU per request: the benchmark's requests through the ASGI app, no HTTP, no wrk.

For profiling and for comparing one change with the next (bench/README.md, "Optimisation log"):
the app of `gateway serve` (same settings: schema `bench`, no migration), called directly with
`bench/results/requests-<query>.tsv` (written by bench/run.py) by 16 concurrent tasks on uvloop.
Prints the process's CPU ms per request, which includes this driver's own small share.
Before measuring, every API key's `last_used_at` is set to now (as bench/run.py does), so
authentication writes nothing during the measurement.

    .venv/bin/python bench/inprocess.py q1,q2,rest_user,rest_member 480
    .venv/bin/py-spy record -r 500 -f raw -o /tmp/q1.txt -- .venv/bin/python bench/inprocess.py q1 960

Under valgrind (`bench/instructions.py`), `GATEWAY_BENCH_CALLGRIND=1` switches callgrind's
instrumentation on for the measured requests only: instruction counts, unlike CPU time, do
not move with the other load of a shared machine. `GATEWAY_BENCH_TARGET=floor` drives the
floor (bench/floor.py) instead of the gateway; `GATEWAY_BENCH_GC_STATS=1` adds the cyclic
garbage collector's collections and pauses per generation.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
os.environ.setdefault("GATEWAY_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
os.environ["GATEWAY_DATABASE_SCHEMA"] = "bench"
os.environ["GATEWAY_MIGRATE_ON_START"] = "false"
os.environ["GATEWAY_LOG_LEVEL"] = "warning"

import uvloop  # noqa: E402

from gateway.app import create_app, tune_collector  # noqa: E402

CONCURRENCY = 16
WARMUP = 25  # requests per task before measuring


def load(query: str) -> list[tuple[str, str, str, bytes]]:
    rows = []
    for line in (BENCH / "results" / f"requests-{query}.tsv").read_text().splitlines():
        method, path, token, body = line.split("\t")
        rows.append((method, path, token, body.encode()))
    return rows


async def call(app: Any, method: str, path: str, token: str, body: bytes) -> dict[str, Any]:
    path, _, query_string = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    response: dict[str, Any] = {"body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response["status"] = message["status"]
        elif message["type"] == "http.response.body":
            response["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return response


async def refresh_key_stamps() -> None:
    import asyncpg

    conn = await asyncpg.connect(os.environ["GATEWAY_DATABASE_URL"])
    try:
        await conn.execute("UPDATE bench.api_keys SET last_used_at = now()")
        await conn.execute("VACUUM (ANALYZE) bench.api_keys")  # as bench/run.py's refresh
    finally:
        await conn.close()


class GcStats:
    """Collections, total and longest pause per generation (`GATEWAY_BENCH_GC_STATS=1`)."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.total = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation, took = info["generation"], time.perf_counter() - self._started
        self.count[generation] += 1
        self.total[generation] += took
        self.longest[generation] = max(self.longest[generation], took)

    def report(self, requests: int) -> str:
        return ", ".join(
            f"gen{g} {self.count[g]}x {1000 * self.total[g] / requests:.2f} ms/request"
            f" (longest {1000 * self.longest[g]:.1f} ms)"
            for g in range(3)
        )


def callgrind(switch: str) -> None:
    if os.environ.get("GATEWAY_BENCH_CALLGRIND"):
        subprocess.run(
            ["callgrind_control", "-i", switch, str(os.getpid())], capture_output=True, check=True
        )


async def main(queries: list[str], count: int) -> None:
    if os.environ.get("GATEWAY_BENCH_TARGET") == "floor":
        # The floor (bench/floor.py) through the same driver: the same requests and answers.
        sys.path.insert(0, str(BENCH))
        from floor import create_app as create_floor

        floor = create_floor(os.environ["GATEWAY_DATABASE_URL"])
        async with floor.router.lifespan_context(floor):
            await measure(floor, queries, count)
        return
    app = create_app()
    # As `gateway serve`'s lifespan does: startup objects out of the collector's reach, and
    # its thresholds.
    tune_collector()
    await measure(app, queries, count)
    await app.state.gateway.close()


async def measure(app: Any, queries: list[str], count: int) -> None:
    for query in queries:
        requests = load(query)

        async def worker(index: int, n: int, requests: list[Any] = requests) -> None:
            for k in range(n):
                answer = await call(app, *requests[(index * 97 + k) % len(requests)])
                assert answer["status"] == 200, answer

        # Warm-up: every pooled connection prepares its statements, every cache fills.
        await asyncio.gather(*(worker(i, WARMUP) for i in range(CONCURRENCY)))
        await refresh_key_stamps()
        per_task = max(1, count // CONCURRENCY)
        gc_stats = GcStats() if os.environ.get("GATEWAY_BENCH_GC_STATS") else None
        if gc_stats is not None:
            gc.callbacks.append(gc_stats)
        callgrind("on")
        before, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        await asyncio.gather(*(worker(i, per_task) for i in range(CONCURRENCY)))
        after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - wall
        user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
        cpu = user + system
        callgrind("off")
        done = per_task * CONCURRENCY
        print(
            f"{query}: {1000 * cpu / done:.2f} ms CPU/request (user {1000 * user / done:.2f},"
            f" system {1000 * system / done:.2f}), {done / wall:.0f} req/s,"
            f" {(after.ru_minflt - before.ru_minflt) / done:.1f} page faults/request"
        )
        if gc_stats is not None:
            gc.callbacks.remove(gc_stats)
            print(f"  GC: {gc_stats.report(done)}")


if __name__ == "__main__":
    names = (
        sys.argv[1].split(",") if len(sys.argv) > 1 else ["q1", "q2", "rest_user", "rest_member"]
    )
    uvloop.run(main(names, int(sys.argv[2]) if len(sys.argv) > 2 else 480))
