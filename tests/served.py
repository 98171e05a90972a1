"""A real `gateway serve` process on a free loopback port, on a fresh migrated database with
the demo data: for tests that need a served gateway (fuzzing, the browser)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import PG_URL, create_migrated_schema, drop_schema, stop_process

BIN = Path(sys.executable).parent


@dataclass
class ServedGateway:
    url: str
    key: str  # the demo owner's API key
    user_id: str  # the demo owner
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def served_gateway(
    backend: str, folder: Path, env: dict[str, str] | None = None
) -> Iterator[ServedGateway]:
    """`gateway serve` on `backend` ("sqlite" or "postgresql", a new schema dropped after),
    migrated and seeded by the CLI (`migrate`, `seed-plans`, `seed-demo`), with `env` on top of
    a development environment; stopped on exit."""
    port = free_port()
    environment = {
        **os.environ,
        "GATEWAY_ENVIRONMENT": "development",
        "GATEWAY_PORT": str(port),
        "GATEWAY_RATE_LIMIT_ANONYMOUS_PER_MINUTE": "0",
        "GATEWAY_LOG_LEVEL": "warning",
        **(env or {}),
    }
    schema = None
    if backend == "sqlite":
        environment["GATEWAY_DATABASE_URL"] = f"sqlite+aiosqlite:///{folder}/gateway.db"
    else:
        schema = asyncio.run(create_migrated_schema("gw_served"))
        environment["GATEWAY_DATABASE_URL"] = PG_URL or ""
        environment["GATEWAY_DATABASE_SCHEMA"] = schema
    gateway = str(BIN / "gateway")
    process = None
    try:
        for command in ("migrate", "seed-plans"):
            subprocess.run(
                [gateway, command], env=environment, check=True, capture_output=True, cwd=folder
            )
        seeded = subprocess.run(
            [gateway, "seed-demo"],
            env=environment,
            check=True,
            capture_output=True,
            text=True,
            cwd=folder,
        ).stdout
        key = re.search(r"api key:\s+(\S+)", seeded)
        user = re.search(r"user:\s+(usr-\S+)", seeded)
        assert key and user, seeded
        log = folder / "serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [gateway, "serve"], env=environment, stdout=out, stderr=out, cwd=folder
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield ServedGateway(url, key[1], user[1], log)
    finally:
        if process is not None:
            stop_process(process, timeout=20)
        if schema is not None:
            asyncio.run(drop_schema(schema))
