"""Fuzzing with schemathesis against a served gateway: REST from its OpenAPI document, GraphQL
from its schema, on SQLite and on PostgreSQL. No request may answer 5xx, and no GraphQL error
may be unexpected (tests/fuzz/checks.py).

Bounded: `GATEWAY_FUZZ_EXAMPLES` examples per operation (default 10) and a fixed seed, so a
run is repeatable; a failure prints schemathesis' report with a `curl` that reproduces it.
Path parameters named for the caller's user and organization take the seeded ones, so the
handlers behind them run, not just their 404s.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.served import BIN, served_gateway

EXAMPLES = os.environ.get("GATEWAY_FUZZ_EXAMPLES", "10")
SEED = "20261206"
CHECKS = Path(__file__).with_name("checks.py")


@dataclass
class Served:
    url: str
    key: str
    log: Path
    # Path parameters by name: ids of the seeded world that the caller may reach.
    ids: dict[str, str]


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """`gateway serve` on a fresh database with the demo data, and a world around it."""
    folder = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    env = {"GATEWAY_SERVICE_TOKEN": "service-token-for-fuzzing"}
    with served_gateway(request.param, folder, env) as gateway:
        ids = world(gateway.url, gateway.key, gateway.user_id)
        yield Served(gateway.url, gateway.key, gateway.log, ids)


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
