"""Instructions per request connection cycle on PostgreSQL: take a pooled connection, run one
plain read (`fetch_rows`), give it back. What the pool, its gate and checkout checks cost.

Under callgrind, with instrumentation on for the measured cycles only:

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/connection_cycle.py [--pre-ping]

prints nothing itself: divide callgrind's "Collected" by the cycle count (400). `--pre-ping`
turns on SQLAlchemy's `pool_pre_ping` (a round trip per checkout) to compare.

Measured (2026-12, this machine): 270,900 per cycle; 579,400 with `--pre-ping`. Before the
gate moved into the pool, the same cycle through the app's `ConnectionGate` was ~270,000.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from sqlalchemy import literal_column, select

from gateway.db.engine import create_engine
from gateway.db.session import RequestDatabase, create_session_factory, fetch_rows

CYCLES = 400


def callgrind(switch: str) -> None:
    subprocess.run(["callgrind_control", "-i", switch, str(os.getpid())], capture_output=True)


async def main(pre_ping: bool) -> None:
    url = os.environ.get("GATEWAY_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    engine = create_engine(url, pool_size=4)
    engine.sync_engine.pool._pre_ping = pre_ping
    sessions = create_session_factory(engine)
    statement = select(literal_column("1").label("one"))

    async def cycle() -> None:
        db = RequestDatabase(sessions)
        await fetch_rows(db, statement)
        await db.close()

    for _ in range(300):  # warm up: connections, prepared statements, caches
        await cycle()
    callgrind("on")
    for _ in range(CYCLES):
        await cycle()
    callgrind("off")
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main("--pre-ping" in sys.argv))
