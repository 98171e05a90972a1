"""Fuzzing with schemathesis against a served gateway: REST from its OpenAPI document, GraphQL
from its schema, on SQLite and on PostgreSQL. No request may answer 5xx, and no GraphQL error
may be unexpected (tests/fuzz/checks.py).

Bounded: `GATEWAY_FUZZ_EXAMPLES` examples per operation (default 10) and a fixed seed, so a
run is repeatable; a failure prints schemathesis' report with a `curl` that reproduces it.
Path parameters named for the caller's user and organization take the seeded ones, so the
handlers behind them run, not just their 404s.
"""

from __future__ import annotations

import asyncio
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
import pytest

from tests.conftest import BACKENDS, PG_URL, create_migrated_schema, drop_schema, stop_process

EXAMPLES = os.environ.get("GATEWAY_FUZZ_EXAMPLES", "10")
SEED = "20261206"
BIN = Path(sys.executable).parent
CHECKS = Path(__file__).with_name("checks.py")


@dataclass
class Served:
    url: str
    key: str
    log: Path
    # Path parameters by name: ids of the seeded world that the caller may reach.
    ids: dict[str, str]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """`gateway serve` on a free loopback port, on a fresh database with the demo data."""
    folder = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    port = _free_port()
    env = {
        **os.environ,
        "GATEWAY_ENVIRONMENT": "development",
        "GATEWAY_PORT": str(port),
        "GATEWAY_SERVICE_TOKEN": "service-token-for-fuzzing",
        "GATEWAY_RATE_LIMIT_ANONYMOUS_PER_MINUTE": "0",
        "GATEWAY_LOG_LEVEL": "warning",
    }
    schema = None
    if request.param == "sqlite":
        env["GATEWAY_DATABASE_URL"] = f"sqlite+aiosqlite:///{folder}/gateway.db"
    else:
        schema = asyncio.run(create_migrated_schema("gw_fuzz"))
        env["GATEWAY_DATABASE_URL"] = PG_URL or ""
        env["GATEWAY_DATABASE_SCHEMA"] = schema
    gateway = str(BIN / "gateway")
    subprocess.run([gateway, "migrate"], env=env, check=True, capture_output=True, cwd=folder)
    subprocess.run([gateway, "seed-plans"], env=env, check=True, capture_output=True, cwd=folder)
    seeded = subprocess.run(
        [gateway, "seed-demo"], env=env, check=True, capture_output=True, text=True, cwd=folder
    ).stdout
    key = re.search(r"api key:\s+(\S+)", seeded)
    user = re.search(r"user:\s+(usr-\S+)", seeded)
    assert key and user, seeded
    log = folder / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([gateway, "serve"], env=env, stdout=out, stderr=out, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield Served(url, key[1], log, world(url, key[1], user[1]))
    finally:
        stop_process(process, timeout=20)
        if schema is not None:
            asyncio.run(drop_schema(schema))


def world(url: str, key: str, user_id: str) -> dict[str, str]:
    """A member, an invite, a payment and an API key beside the demo organization, through
    the API itself: their ids go into the generated paths."""
    api = httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {key}"})
    with api:
        members = api.post(
            f"{url}/graphql",
            json={
                "query": "{ viewer { organizations { organizationId organization {"
                " members(first: 5) { nodes { id role } } } } } }"
            },
        ).json()["data"]["viewer"]["organizations"][0]
        org_id = members["organizationId"]
        member = next(
            m for m in members["organization"]["members"]["nodes"] if m["role"] != "OWNER"
        )
        invite = api.post(
            f"/organizations/{org_id}/invites",
            json={"invites": [{"email": "invitee@example.com", "role": "member"}]},
        )
        payment = api.post("/users/credits/checkout", json={"amountCents": 1_000})
        api_key = api.post("/api-keys", json={"name": "fuzzed"})
        plans = api.get("/plans")
        for response in (invite, payment, api_key, plans):
            assert response.status_code < 300, response.text
        return {
            "id": user_id,
            "orgId": org_id,
            "memberId": member["id"],
            "inviteId": invite.json()["data"]["items"][0]["id"],
            "paymentId": payment.json()["data"]["paymentId"],
            "keyId": api_key.json()["data"]["id"],
            "planId": plans.json()["data"][0]["id"],
        }


def schemathesis(served: Served, location: str, *options: str, hooks: bool = False) -> None:
    config = served.log.with_name("schemathesis.toml")
    lines = "".join(f'"path.{name}" = "{value}"\n' for name, value in served.ids.items())
    config.write_text("[parameters]\n" + lines)
    env = {**os.environ}
    if hooks:
        env["SCHEMATHESIS_HOOKS"] = str(CHECKS)
    result = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "--config-file",
            str(config),
            "run",
            f"{served.url}{location}",
            "--header",
            f"Authorization: Bearer {served.key}",
            "--max-examples",
            EXAMPLES,
            "--seed",
            SEED,
            "--workers",
            "1",
            "--no-color",
            *options,
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=served.log.parent,
    )
    assert result.returncode == 0, (
        result.stdout[-20_000:] + result.stderr[-5_000:] + served.log.read_text()[-5_000:]
    )


def test_rest_answers_no_5xx_to_generated_requests(served: Served) -> None:
    schemathesis(
        served,
        "/api/v1/openapi.json",
        "--checks",
        "not_a_server_error",
        "--phases",
        "examples,coverage,fuzzing",
    )


def test_graphql_answers_no_unexpected_error_to_generated_queries(served: Served) -> None:
    schemathesis(
        served,
        "/graphql",
        "--checks",
        "no_unexpected_graphql_error",
        "--exclude-checks",
        "not_a_server_error",
        hooks=True,
    )
