"""The plan catalog: `GET /plans`, GraphQL `plans`/`plan`/`node`, and seeding it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.db import models
from gateway.errors import ValidationFailed
from resolvers.plan_catalog import DEFAULT_PLANS, seed_plans
from tests.billing.helpers import PLAN_KEYS, seed
from tests.conftest import Env

PLAN_ID = re.compile(r"^pln-[0-9A-HJKMNP-TV-Z]{26}$")


async def test_plans_is_a_bare_array_with_contract_fields(env: Env) -> None:
    ids = await seed(env)
    alice = await env.user()
    response = await alice.get("/plans")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert isinstance(body["data"], list)
    assert len(body["data"]) == 4
    teams = next(p for p in body["data"] if p["name"] == "teams-monthly")
    assert set(teams) == PLAN_KEYS
    assert teams == {
        "id": ids["teams-monthly"],
        "name": "teams-monthly",
        "displayName": "Teams",
        "type": "teams",
        "interval": "Monthly",
        "pricePerSeatCents": 3000,
        "features": {"included": ["All models", "Web search", "Shared billing", "Usage by member"]},
    }
    assert PLAN_ID.match(teams["id"])


async def test_plans_filter_by_type(env: Env) -> None:
    await seed(env)
    alice = await env.user()
    teams = (await alice.get("/plans?type=teams")).json()["data"]
    individual = (await alice.get("/plans?type=individual")).json()["data"]
    assert {p["type"] for p in teams} == {"teams"} and len(teams) == 2
    assert {p["type"] for p in individual} == {"individual"} and len(individual) == 2
    # cheapest first within a type
    assert [p["interval"] for p in teams] == ["Monthly", "Yearly"]


async def test_plans_rejects_unknown_type(env: Env) -> None:
    alice = await env.user()
    response = await alice.get("/plans?type=enterprise")
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert "type" in response.json()["error"]


async def test_plans_is_empty_array_without_catalog(env: Env) -> None:
    alice = await env.user()
    response = await alice.get("/plans")
    assert response.json() == {"success": True, "data": []}


async def test_retired_plans_are_not_listed(env: Env) -> None:
    ids = await seed(env)
    async with env.sessions() as session:
        plan = await session.get(models.Plan, ids["pro-yearly"])
        assert plan is not None
        plan.active = False
        await session.commit()
    alice = await env.user()
    names = [p["name"] for p in (await alice.get("/plans")).json()["data"]]
    assert "pro-yearly" not in names and len(names) == 3


async def test_plans_needs_authentication(env: Env) -> None:
    response = await env.anonymous.get("/plans")
    assert response.status_code == 401
    assert response.json()["success"] is False


PLANS_QUERY = """
query($type: PlanType) {
  plans(type: $type) { id name displayName type interval pricePerSeatCents features active }
}"""


async def test_graphql_plans_lists_catalog(env: Env) -> None:
    ids = await seed(env)
    alice = await env.user()
    data = await alice.gql_data(PLANS_QUERY, {"type": "INDIVIDUAL"})
    assert data["plans"][0] == {
        "id": ids["pro-monthly"],
        "name": "pro-monthly",
        "displayName": "Pro",
        "type": "INDIVIDUAL",
        "interval": "MONTHLY",
        "pricePerSeatCents": 2000,
        "features": ["All models", "Web search", "Priority support"],
        "active": True,
    }
    assert [p["name"] for p in data["plans"]] == ["pro-monthly", "pro-yearly"]
    everything = await alice.gql_data(PLANS_QUERY)
    assert len(everything["plans"]) == 4


async def test_graphql_plans_needs_authentication(env: Env) -> None:
    body = await env.anonymous.gql(PLANS_QUERY)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_graphql_plan_and_node_by_id(env: Env) -> None:
    ids = await seed(env)
    alice = await env.user()
    data = await alice.gql_data(
        """query($id: ID!) {
          plan(id: $id) { name }
          node(id: $id) { id ... on Plan { displayName } }
        }""",
        {"id": ids["teams-yearly"]},
    )
    assert data["plan"] == {"name": "teams-yearly"}
    assert data["node"] == {"id": ids["teams-yearly"], "displayName": "Teams (yearly)"}


async def test_graphql_unknown_plan_is_null(env: Env) -> None:
    alice = await env.user()
    data = await alice.gql_data('query { plan(id: "pln-01JAAAAAAAAAAAAAAAAAAAAAAA") { id } }')
    assert data["plan"] is None


async def test_seed_plans_updates_by_name_and_keeps_unlisted_fields(env: Env) -> None:
    ids = await seed(env)
    async with env.sessions() as session:
        plan = await session.get(models.Plan, ids["teams-monthly"])
        assert plan is not None
        plan.provider_price_id = "price_kept"
        await session.commit()
    changed = [{**DEFAULT_PLANS[2], "price_per_seat_cents": 3500}]
    async with env.sessions() as session:
        done = await seed_plans(session, changed)
        await session.commit()
    assert done[0][1] is False
    plans = await env.all(select(models.Plan).where(models.Plan.name == "teams-monthly"))
    assert len(plans) == 1
    assert plans[0].id == ids["teams-monthly"]
    assert plans[0].price_per_seat_cents == 3500
    assert plans[0].provider_price_id == "price_kept"


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "x", "display_name": "X", "type": "company", "interval": "Monthly"},
        {"name": "x", "display_name": "X", "type": "teams", "interval": "Weekly"},
        {"name": "x", "display_name": "X", "type": "teams", "interval": "Monthly", "price": 1},
        {"name": "x", "display_name": "X", "type": "teams"},
    ],
)
async def test_seed_plans_rejects_invalid_specs(env: Env, bad: dict[str, Any]) -> None:
    spec = {"price_per_seat_cents": 100, **bad}
    async with env.sessions() as session:
        with pytest.raises(ValidationFailed):
            await seed_plans(session, [spec])


# --- `gateway seed-plans` ------------------------------------------------------------------


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        env={"GATEWAY_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_cli_seed_plans_creates_then_updates_the_catalog(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "migrate").returncode == 0
    first = run_cli(tmp_path, "seed-plans")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created ") == 4
    assert "created teams-monthly (pln-" in first.stdout
    again = run_cli(tmp_path, "seed-plans")
    assert again.returncode == 0 and again.stdout.count("updated ") == 4


def test_cli_seed_plans_reads_a_file_and_refuses_bad_ones(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "migrate").returncode == 0
    good = tmp_path / "plans.json"
    good.write_text(
        json.dumps(
            [
                {
                    "name": "startup",
                    "display_name": "Startup",
                    "type": "teams",
                    "interval": "Monthly",
                    "price_per_seat_cents": 1500,
                    "features": ["Everything"],
                    "provider_price_id": "plan_startup",
                }
            ]
        )
    )
    done = run_cli(tmp_path, "seed-plans", "--file", str(good))
    assert done.returncode == 0, done.stderr
    assert "created startup" in done.stdout and "provider: plan_startup" in done.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "x", "type": "company"}]))
    refused = run_cli(tmp_path, "seed-plans", "--file", str(bad))
    assert refused.returncode == 1 and "error:" in refused.stderr
    assert run_cli(tmp_path, "seed-plans", "--stripe").returncode == 1
