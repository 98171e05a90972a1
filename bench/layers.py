"""Where a request's CPU goes, by layer: a sampled profile of `bench/inprocess.py`, summed.

`bench/instructions.py` says how much a request costs; this says where. It runs the in-process
driver under py-spy (a sampling profiler: `.venv/bin/pip install py-spy`), keeps the samples of
the measured requests (not the app's start), and gives each sample to the layer of the deepest
frame on its stack that belongs to one (`LAYERS`, first match per frame): a database read made
by authentication counts as the database's, a loader's batch run by a resolver as the loaders'.
asyncio's own Python frames count as the layer that called them (a `shield`, a `gather`); a
sample with no layer's frame is the event loop's.

    .venv/bin/python bench/layers.py user_payments,node_lookup --count 8000
    GATEWAY_AUTH_CACHE_SECONDS=60 .venv/bin/python bench/layers.py api_keys_page   # warm keys

Prints, per operation, each layer's share of the samples and its CPU ms per request: that share
of the driver's CPU ms per request in a run of its own (py-spy stops the process to sample it,
which costs CPU too). Shares move by about a point between runs; sampling at
500 Hz, 8,000 requests give ~10,000 samples. Needs `bench/results/requests-<query>.tsv`
(written by bench/run.py).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (layer, fragments of a frame's text: `function (path:line)`); a frame belongs to the first
# layer with a fragment in it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("bench driver", ("worker (inprocess.py", "call (inprocess.py", "call.<locals>.")),
    ("database: pool, coalescer, driver", ("gateway/db/", "sqlalchemy/", "asyncpg/")),
    ("loaders", ("resolvers/batching.py", "resolvers/loaders/", "aiodataloader/")),
    ("JSON", ("gateway/jsoncodec.py", "json/", "orjson")),
    ("authentication, rate limit", ("gateway/auth.py", "gateway/ratelimit.py", "AppState.")),
    ("request context", ("gateway/context.py", "resolvers/context.py")),
    (
        "GraphQL executor: set-up, variables, response",
        (
            "schema/engine/prepared.py",
            "schema/engine/execution.py",
            "schema/engine/internals.py",
            "schema/engine/persisted.py",
            "graphql/",
            "strawberry/schema/",
            "strawberry/types/",
        ),
    ),
    (
        "compiled plans: run, completion",
        ("schema/engine/", "<compiled plan", "<record reader"),
    ),
    ("resolvers, permissions, schema types", ("resolvers/", "schema/")),
    ("GraphQL view: body, context, answer", ("gateway/graphql_http.py", "strawberry/http/")),
    (
        "HTTP edge: middleware, router, responses",
        ("starlette/", "gateway/app.py", "gateway/http_limits.py", "gateway/responses.py"),
    ),
    ("metrics, logging, tracing", ("prometheus_client/", "gateway/metrics.py", "logging/")),
    ("other gateway code: settings, ids, errors, services", ("gateway/",)),
]
EVENT_LOOP = "event loop and asyncio"
# Frames of the app's start and of the driver's set-up between operations: not requests.
NOT_REQUESTS = ("main (", "refresh_key_stamps", "create_app")


def layer_of(frame: str) -> str | None:
    for layer, fragments in LAYERS:
        if any(fragment in frame for fragment in fragments):
            return layer
    return None


def summarise(raw: str) -> Counter[str]:
    """Samples per layer, from py-spy's raw format (`frame;frame;… count`, root first)."""
    layers: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any("Runner.run" in frame for frame in frames):
            continue
        if any(frame.startswith(NOT_REQUESTS) for frame in frames):
            continue
        found = EVENT_LOOP
        for frame in frames:  # root first: the deepest frame of a layer decides
            found = layer_of(frame) or found
        layers[found] += int(count)
    return layers


def driver(query: str, count: int) -> list[str]:
    return [sys.executable, str(HERE / "inprocess.py"), query, str(count)]


def cpu_per_request(query: str, count: int) -> float:
    """The driver's CPU ms per request, unprofiled (py-spy stops the process to sample it,
    which costs it CPU too)."""
    done = subprocess.run(driver(query, count), capture_output=True, text=True, check=True)
    found = re.search(rf"^{re.escape(query)}: ([\d.]+) ms CPU/request", done.stdout, re.M)
    if found is None:
        raise SystemExit(f"{query}: no CPU figure in the driver's output:\n{done.stdout}")
    return float(found.group(1))


def profile(query: str, count: int, rate: int, keep: Path | None) -> Counter[str]:
    with tempfile.TemporaryDirectory() as scratch:
        out = (keep or Path(scratch)) / f"layers-{query}.txt"
        spy = str(Path(sys.executable).with_name("py-spy"))
        command = [spy, "record", "-r", str(rate), "-f", "raw", "-o", str(out), "--"]
        subprocess.run(command + driver(query, count), capture_output=True, check=True)
        return summarise(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("queries", help="comma-separated: q1,user_payments,…")
    parser.add_argument("--count", type=int, default=8000, help="measured requests per query")
    parser.add_argument("--rate", type=int, default=500, help="samples per second")
    parser.add_argument("--keep", type=Path, help="keep py-spy's raw profiles in this directory")
    args = parser.parse_args(argv)
    for query in args.queries.split(","):
        cpu = cpu_per_request(query, args.count)
        layers = profile(query, args.count, args.rate, args.keep)
        total = sum(layers.values())
        print(f"\n{query}: {cpu:.2f} ms CPU/request, {total} samples\n")
        print("| layer | share | CPU ms/request |")
        print("|---|---:|---:|")
        for layer, samples in layers.most_common():
            share = samples / total
            print(f"| {layer} | {100 * share:.1f} % | {cpu * share:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
