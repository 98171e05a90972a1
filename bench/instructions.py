"""Instructions per request, in-process, under callgrind: the steady figure on a noisy machine.

CPU time per request moves by ±15-50 % between runs on this shared 2-vCPU machine; the number
of instructions the process executes for the same requests moves by about 1 %. This runs
`bench/inprocess.py` under `valgrind --tool=callgrind` with instrumentation on for the measured
requests only (after the warm-up) and prints millions of instructions per request. To compare
two versions, run it on both checkouts (e.g. a `git worktree` of the older commit), which may
run at the same time: the counts do not depend on the machine's load.

    .venv/bin/python bench/instructions.py q1,q2,rest_user,rest_member --count 48
    .venv/bin/python bench/instructions.py q1 --count 48 --checkout /tmp/older
    .venv/bin/python bench/instructions.py q1,q2,rest_user,rest_member --floor   # and the floor

Needs valgrind (on every machine kind here) and `bench/results/requests-<query>.tsv`
(written by bench/run.py). About 30-60 s per query.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(checkout: Path, query: str, count: int, target: str = "gateway") -> float:
    env = {
        **os.environ,
        "GATEWAY_BENCH_CALLGRIND": "1",
        "GATEWAY_BENCH_TARGET": target,
        "PYTHONPATH": str(checkout),
    }
    results = checkout / "bench" / "results"
    if not (results / f"requests-{query}.tsv").exists():
        results.mkdir(parents=True, exist_ok=True)
        (results / f"requests-{query}.tsv").write_bytes(
            (HERE / "results" / f"requests-{query}.tsv").read_bytes()
        )
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(checkout / "bench" / "inprocess.py"),
            query,
            str(count),
        ],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    requests = max(1, count // 16) * 16
    return int(found.group(1)) / requests / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("queries", help="comma-separated: q1,q2,rest_user,rest_member")
    parser.add_argument(
        "--count", type=int, default=48, help="measured requests (a multiple of 16)"
    )
    parser.add_argument("--checkout", type=Path, default=HERE.parent)
    parser.add_argument(
        "--floor", action="store_true", help="also measure the floor (bench/floor.py)"
    )
    args = parser.parse_args()
    for query in args.queries.split(","):
        per_request = measure(args.checkout.resolve(), query, args.count)
        line = f"{query}: {per_request:.2f} M instructions/request ({args.checkout})"
        if args.floor:
            floor = measure(args.checkout.resolve(), query, args.count, "floor")
            line += f"; floor {floor:.2f} M, gateway/floor {per_request / floor:.1f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
