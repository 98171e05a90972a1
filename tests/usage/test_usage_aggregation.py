"""Org usage aggregates and metrics: checked against a brute-force computation on random data."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Client, Env
from tests.envelopes import data_of
from tests.usage.helpers import event, ingest_ok, member_id

MODELS = ["gpt-4o", "claude-sonnet", "llama-3", "mistral-large", "gemini-pro", "qwen", "phi"]


@dataclass
class World:
    owner: Client
    admin: Client
    member: Client
    org_id: str
    # user id -> member id
    member_ids: dict[str, str]
    events: list[dict[str, Any]]


async def _world(env: Env, seed: int = 7, count: int = 300) -> World:
    """An org of four (one of whom leaves no trace), usage over 70 days, plus noise elsewhere."""
    rng = random.Random(seed)
    owner = await env.user()
    org_id = await env.organization(owner)
    admin = await env.member(org_id, "admin")
    member = await env.member(org_id)
    await env.member(org_id)  # idle: a member who leaves no usage
    other_org = await env.organization(member, "Elsewhere")
    people = [owner, admin, member]
    now = datetime.now(UTC)
    events = []
    for _ in range(count):
        who = rng.choice(people)
        where = rng.choices([org_id, None, other_org], weights=[8, 1, 1])[0]
        if where == other_org:
            who = member
        created = now - timedelta(seconds=rng.randint(120, 70 * 86_400))
        events.append(
            event(
                who.user_id,
                organizationId=where,
                model=rng.choice(MODELS),
                promptTokens=rng.randint(0, 5_000),
                completionTokens=rng.randint(0, 2_000),
                costUsd=round(rng.uniform(0, 0.05), 6),
                credits=rng.randint(0, 90_000),
                createdAt=created.isoformat().replace("+00:00", "Z"),
            )
        )
    await ingest_ok(env, *events)
    member_ids = {c.user_id: await member_id(env, org_id, c.user_id) for c in people}
    return World(owner, admin, member, org_id, member_ids, events)  # type: ignore[arg-type]


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _brute_force(
    world: World, start: datetime, end: datetime, key_of: Any
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    buckets: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "requests": 0,
            "promptTokens": 0,
            "completionTokens": 0,
            "totalTokens": 0,
            "creditsUsed": 0,
            "micro": 0,
        }
    )
    for e in world.events:
        if e["organizationId"] != world.org_id or not start <= _at(e["createdAt"]) < end:
            continue
        b = buckets[key_of(e)]
        b["requests"] += 1
        b["promptTokens"] += e["promptTokens"]
        b["completionTokens"] += e["completionTokens"]
        b["totalTokens"] += e["promptTokens"] + e["completionTokens"]
        b["creditsUsed"] += e["credits"]
        b["micro"] += round(e["costUsd"] * 1_000_000)
    totals: dict[str, Any] = Counter()
    for b in buckets.values():
        totals.update(b)
    return dict(buckets), dict(totals)


def _wire(bucket: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in bucket.items() if k != "micro"}
    out["costUsd"] = bucket["micro"] / 1_000_000
    return out


def _assert_matches(data: dict[str, Any], world: World, key_of: Any) -> None:
    start, end = _at(data["from"]), _at(data["to"])
    expected, totals = _brute_force(world, start, end, key_of)
    assert expected, "the generated data should fall in the period"
    got = {item["key"]: {k: v for k, v in item.items() if k != "key"} for item in data["items"]}
    assert set(got) == set(expected)
    for key, bucket in expected.items():
        wire = _wire(bucket)
        assert {k: v for k, v in got[key].items() if k != "costUsd"} == {
            k: v for k, v in wire.items() if k != "costUsd"
        }, key
        assert abs(got[key]["costUsd"] - wire["costUsd"]) < 1e-9
    assert data["totals"]["requests"] == totals["requests"]
    assert data["totals"]["creditsUsed"] == totals["creditsUsed"]
    assert data["totals"]["totalTokens"] == totals["totalTokens"]
    assert abs(data["totals"]["costUsd"] - totals["micro"] / 1_000_000) < 1e-9


async def test_usage_by_day_model_and_member_matches_brute_force(env: Env) -> None:
    world = await _world(env)
    key_of = {
        "day": lambda e: _at(e["createdAt"]).date().isoformat(),
        "model": lambda e: e["model"],
        "member": lambda e: world.member_ids[e["userId"]],
    }
    for group_by, key in key_of.items():
        for query in ("", "&from=2020-01-01&to=2020-02-01", "&to=" + _days_ago(10)):
            response = await world.owner.get(
                f"/organizations/{world.org_id}/usages?groupBy={group_by}{query}"
            )
            data = data_of(response)
            assert data["groupBy"] == group_by
            if "2020" in query:
                assert data["items"] == []
                assert data["totals"]["requests"] == 0
                continue
            _assert_matches(data, world, key)
            if group_by == "day":
                assert [i["key"] for i in data["items"]] == sorted(i["key"] for i in data["items"])


def _days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).date().isoformat()


async def test_usage_over_explicit_dates_includes_the_whole_last_day(env: Env) -> None:
    world = await _world(env, seed=11, count=120)
    start, end = _days_ago(45), _days_ago(20)
    response = await world.admin.get(
        f"/organizations/{world.org_id}/usages?groupBy=day&from={start}&to={end}"
    )
    data = response.json()["data"]
    assert data["from"] == f"{start}T00:00:00.000000Z"
    day_after = (datetime.fromisoformat(end) + timedelta(days=1)).date().isoformat()
    assert data["to"] == f"{day_after}T00:00:00.000000Z"
    _assert_matches(data, world, lambda e: _at(e["createdAt"]).date().isoformat())
    assert data["items"][-1]["key"] <= end


async def test_usage_defaults_to_the_last_30_days(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    data = (await alice.get(f"/organizations/{org_id}/usages")).json()["data"]
    assert data["groupBy"] == "day"
    assert _at(data["to"]) - _at(data["from"]) == timedelta(days=30)
    assert data["items"] == []
    assert data["totals"] == {
        "requests": 0,
        "promptTokens": 0,
        "completionTokens": 0,
        "totalTokens": 0,
        "creditsUsed": 0,
        "costUsd": 0.0,
    }


async def test_metrics_match_brute_force(env: Env) -> None:
    world = await _world(env, seed=3)
    response = await world.owner.get(f"/organizations/{world.org_id}/metrics")
    data = data_of(response)
    assert list(data) == [
        "from",
        "to",
        "requests",
        "promptTokens",
        "completionTokens",
        "totalTokens",
        "creditsUsed",
        "costUsd",
        "activeMembers",
        "topModels",
    ]
    start, end = _at(data["from"]), _at(data["to"])
    by_model, totals = _brute_force(world, start, end, lambda e: e["model"])
    by_user, _ = _brute_force(world, start, end, lambda e: e["userId"])
    assert data["requests"] == totals["requests"]
    assert data["promptTokens"] == totals["promptTokens"]
    assert data["completionTokens"] == totals["completionTokens"]
    assert data["totalTokens"] == totals["totalTokens"]
    assert data["creditsUsed"] == totals["creditsUsed"]
    assert abs(data["costUsd"] - totals["micro"] / 1_000_000) < 1e-9
    assert data["activeMembers"] == len(by_user)
    ranked = sorted(
        by_model.items(), key=lambda kv: (-kv[1]["requests"], -kv[1]["creditsUsed"], kv[0])
    )[:5]
    assert data["topModels"] == [
        {"aiModelName": name, "requests": b["requests"], "creditsUsed": b["creditsUsed"]}
        for name, b in ranked
    ]


async def test_period_is_validated(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    bad = [
        "from=2026-02-01&to=2026-01-01",
        "from=2024-01-01&to=2025-06-01",
        "from=yesterday",
        "from=2026-01-01T00:00:00",
        "groupBy=week",
    ]
    for query in bad:
        for route in ("usages", "metrics"):
            if route == "metrics" and "groupBy" in query:
                continue
            response = await alice.get(f"/organizations/{org_id}/{route}?{query}")
            assert response.status_code == 400, (route, query, response.text)
            assert response.json()["success"] is False
    leap_year = await alice.get(f"/organizations/{org_id}/usages?from=2024-01-01&to=2024-12-31")
    assert leap_year.status_code == 200
    same_instant = "from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"
    assert (await alice.get(f"/organizations/{org_id}/usages?{same_instant}")).status_code == 200


async def test_aggregates_are_for_owners_and_admins(env: Env) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    admin = await env.member(org_id, "admin")
    member = await env.member(org_id)
    stranger = await env.user()
    for route in ("usages", "metrics"):
        path = f"/organizations/{org_id}/{route}"
        assert (await owner.get(path)).status_code == 200
        assert (await admin.get(path)).status_code == 200
        assert (await member.get(path)).status_code == 403
        assert (await stranger.get(path)).status_code == 404
        assert (await env.anonymous.get(path)).status_code == 401


SUMMARY = """query ($id: ID!, $from: DateTime, $to: DateTime, $groupBy: UsageGroupBy!) {
  organization(id: $id) {
    usageSummary(from: $from, to: $to, groupBy: $groupBy) {
      from to groupBy
      buckets { key totals { requests creditsUsed costMicroUsd totalTokens } }
      totals { requests creditsUsed costMicroUsd costUsd }
    }
    metrics(from: $from, to: $to) {
      totals { requests creditsUsed }
      activeMembers
      topModels { modelName requests creditsUsed }
    }
  }
}"""


async def test_graphql_summary_and_metrics_agree_with_rest(env: Env) -> None:
    world = await _world(env, seed=5, count=150)
    start = (datetime.now(UTC) - timedelta(days=40)).replace(microsecond=0)
    variables = {
        "id": world.org_id,
        "from": start.isoformat().replace("+00:00", "Z"),
        "to": None,
        "groupBy": "MODEL",
    }
    data = (await world.owner.gql_data(SUMMARY, variables))["organization"]
    summary = data["usageSummary"]
    assert summary["groupBy"] == "MODEL"
    rest = (
        await world.owner.get(
            f"/organizations/{world.org_id}/usages?groupBy=model&from={variables['from']}"
            f"&to={summary['to']}"
        )
    ).json()["data"]
    assert [(b["key"], b["totals"]["requests"]) for b in summary["buckets"]] == [
        (i["key"], i["requests"]) for i in rest["items"]
    ]
    assert summary["totals"]["creditsUsed"] == rest["totals"]["creditsUsed"]
    assert summary["totals"]["costMicroUsd"] == round(rest["totals"]["costUsd"] * 1_000_000)
    assert data["metrics"]["totals"]["requests"] == summary["totals"]["requests"]
    assert len(data["metrics"]["topModels"]) == 5
    body = await world.member.gql(SUMMARY, {**variables, "from": None})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
