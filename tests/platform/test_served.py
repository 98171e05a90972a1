"""`gateway serve` as operators run it, in a process of its own: JSON log lines (uvicorn's
included) and /metrics summed over several worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, stop_process

STARTUP_SECONDS = 120  # a guard against a server that never starts, not a measure


@contextmanager
def served(tmp_path: Path, **settings: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`gateway serve` on a free port and a new SQLite database, with these environment
    variables: its base URL and its process (stderr piped: read it after stopping it)."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/served.db",
        "GATEWAY_PORT": str(port),
        "GATEWAY_RATE_LIMIT_ANONYMOUS_PER_MINUTE": "0",
        **settings,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base, process
    finally:
        if process.poll() is None:
            stop_process(process)


def log_lines(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """Every line the stopped server wrote to stderr, each parsed as JSON (failing on one
    that is not)."""
    assert process.stderr is not None
    lines = [line for line in process.stderr.read().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError as error:
            raise AssertionError(f"not a JSON line: {line!r}") from error
    return parsed


def test_every_line_of_a_served_gateway_is_json_with_client_mistakes_at_info(
    tmp_path: Path,
) -> None:
    with served(
        tmp_path,
        GATEWAY_LOG_FORMAT="json",
        GATEWAY_ACCESS_LOG="true",
        GATEWAY_SERVICE_TOKEN="service-token-for-tests",
    ) as (base, process):
        invalid = httpx.post(f"{base}/graphql", json={"query": "{ noSuchField }"})
        refused = httpx.post(
            f"{base}/api/v1/internal/usages",
            json={"events": "not a list"},
            headers={"Authorization": "Bearer service-token-for-tests"},
        )
        stop_process(process)
    assert invalid.status_code == 200 and refused.status_code == 400
    lines = log_lines(process)
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert {(line["method"], line["path"], line["status"]) for line in access} >= {
        ("POST", "/graphql", 200),
        ("POST", "/api/v1/internal/usages", 400),
    }
    mistakes = [line for line in lines if "GRAPHQL_VALIDATION_FAILED" in line["msg"]]
    mistakes += [line for line in lines if line["msg"].startswith("rest 400")]
    assert len(mistakes) == 2
    assert all(line["level"] == "info" and "exc" not in line for line in mistakes)
    assert all(line.get("request_id") for line in mistakes + access)


def test_metrics_are_summed_over_worker_processes(tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    with served(
        tmp_path,
        GATEWAY_WORKERS="2",
        GATEWAY_LOG_LEVEL="warning",
        PROMETHEUS_MULTIPROC_DIR=str(directory),
    ) as (base, _):
        for _ in range(40):  # a new connection each: the workers take them as the kernel deals
            assert httpx.get(f"{base}/healthz").status_code == 200
        text = httpx.get(f"{base}/metrics").text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    healthz = [
        sample.value
        for sample in families["gateway_requests"].samples
        if sample.name == "gateway_requests_total" and sample.labels["route"] == "/healthz"
    ]
    # The 40 probes and the one `served` waited for, whichever worker answered each: without
    # multiprocess mode the scrape would show only its own worker's share.
    assert healthz == [41.0]
