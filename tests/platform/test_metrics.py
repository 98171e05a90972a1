"""/metrics from prometheus_client: what is counted and how it is labelled, read back with
prometheus_client's own parser. The metrics are the process's, so each test compares them
before and after what it does."""

from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.billing.ledger import post_entry
from tests.billing.helpers import SECRET, event, sign
from tests.conftest import Env
from tests.usage.helpers import event as usage_event
from tests.usage.helpers import ingest_ok

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
# The latency labels of `GET /api/v1/organizations/{id}/members`, but its status class.
MEMBERS = {"route": "/api/v1/organizations/{orgId}/members", "method": "GET", "operation": ""}


async def scrape(env: Env) -> Samples:
    response = await env.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How much a sample grew between two scrapes."""
    return value(after, name, **labels) - value(before, name, **labels)


def labelled(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for sample, labels in samples if sample == name}


@pytest.mark.parametrize(
    ("path", "route", "status"),
    [("/healthz", "/healthz", "200"), ("/no/such/path/usr-123", "other", "404")],
    ids=["counted_by_route_and_exact_status", "a_path_no_route_takes_is_labelled_other"],
)
async def test_requests_are_counted(env: Env, path: str, route: str, status: str) -> None:
    before = await scrape(env)
    await env.http.get(path)
    after = await scrape(env)
    labels = {"route": route, "method": "GET", "status": status}
    assert grew(before, after, "gateway_requests_total", **labels) == 1


async def test_rest_latency_is_labelled_by_route_template_never_by_ids(env: Env) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    before = await scrape(env)
    assert (await owner.get(f"/organizations/{org_id}/members")).status_code == 200
    after = await scrape(env)
    labels = {**MEMBERS, "status": "2xx"}
    count = "gateway_request_duration_seconds_count"
    assert grew(before, after, count, **labels) == 1
    assert not any(org_id in route for route in labelled(after, count, "route"))


async def test_status_classes_label_the_latency_histogram(env: Env) -> None:
    owner = await env.user()
    before = await scrape(env)
    await owner.get("/organizations/org-00000000000000000000000000/members")  # not found
    after = await scrape(env)
    labels = {**MEMBERS, "status": "4xx"}
    assert grew(before, after, "gateway_request_duration_seconds_count", **labels) == 1


async def test_graphql_latency_is_labelled_by_operation_name(env: Env) -> None:
    client = await env.user()
    before = await scrape(env)
    await client.gql("query ViewerEmail { viewer { email } }")
    after = await scrape(env)
    labels = {"route": "/graphql", "method": "POST", "operation": "ViewerEmail", "status": "2xx"}
    assert grew(before, after, "gateway_request_duration_seconds_count", **labels) == 1


async def test_anonymous_and_invalid_operations_share_the_label_other(env: Env) -> None:
    client = await env.user()
    before = await scrape(env)
    await client.gql("{ viewer { email } }")
    await client.gql("query Broken { viewer { noSuchField } }")
    after = await scrape(env)
    labels = {"route": "/graphql", "method": "POST", "operation": "other", "status": "2xx"}
    count = "gateway_request_duration_seconds_count"
    assert grew(before, after, count, **labels) == 2
    assert "Broken" not in labelled(after, count, "operation")


@pytest.mark.settings(metrics_max_operations=1)
async def test_operation_names_past_the_limit_share_the_label_other(env: Env) -> None:
    client = await env.user()
    await client.gql("query FirstName { viewer { id } }")
    await client.gql("query SecondName { viewer { id } }")
    operations = labelled(await scrape(env), "gateway_request_duration_seconds_count", "operation")
    assert "FirstName" in operations
    assert "SecondName" not in operations


async def test_usage_events_and_their_ledger_postings_are_counted_once_committed(
    env: Env,
) -> None:
    user = await env.user()
    sent = usage_event(user.user_id)
    before = await scrape(env)
    await ingest_ok(env, sent)
    await ingest_ok(env, sent)  # the same generation id again: a duplicate, nothing posted
    after = await scrape(env)
    for name, labels, added in [
        ("gateway_usage_events_total", {"outcome": "recorded"}, 1),
        ("gateway_usage_events_total", {"outcome": "duplicate"}, 1),
        ("gateway_ledger_postings_total", {"reason": "usage"}, 1),
    ]:
        assert grew(before, after, name, **labels) == added, name


async def test_ledger_postings_count_when_their_transaction_commits_not_a_savepoint(
    env: Env,
) -> None:
    account = await env.account_id(user_id=(await env.user()).user_id)
    before = await scrape(env)
    for keep in (False, True):
        async with env.sessions() as session:
            for n in range(2):  # each in a savepoint, released before the next
                await post_entry(
                    session,
                    account_id=account,
                    amount=5,
                    reason="promotion",
                    idempotency_key=f"metrics:{keep}:{n}",
                )
            if keep:
                await session.commit()
            else:
                await session.rollback()
        counted = grew(
            before, await scrape(env), "gateway_ledger_postings_total", reason="promotion"
        )
        assert counted == (2 if keep else 0)


@pytest.mark.settings(stripe_webhook_secret=SECRET)
async def test_webhook_deliveries_are_counted_by_outcome(env: Env) -> None:
    payload = json.dumps(event("customer.created", {"id": "cus_1", "object": "customer"}))
    before = await scrape(env)
    await env.http.post(
        "/webhooks/stripe", content=payload, headers={"Stripe-Signature": "t=1,v1=bad"}
    )
    for _ in range(2):
        await env.http.post(
            "/webhooks/stripe", content=payload, headers={"Stripe-Signature": sign(payload)}
        )
    after = await scrape(env)
    for outcome in ["bad_signature", "ignored", "duplicate"]:
        labels = {"provider": "stripe", "outcome": outcome}
        assert grew(before, after, "gateway_webhook_events_total", **labels) == 1, outcome


@pytest.mark.settings(database_pool_size=1, database_pool_timeout=30)
async def test_the_pool_gauges_count_connections_in_use_and_requests_waiting(env: Env) -> None:
    if env.backend != "postgresql":
        pytest.skip("SQLite's connections are not pooled behind the gate")
    engine = env.state.engine
    before = await scrape(env)
    in_use, waiting = "gateway_db_pool_connections_in_use", "gateway_db_pool_waiting"
    async with engine.connect():
        second = asyncio.ensure_future(engine.connect().start())
        while value(await scrape(env), waiting) == value(before, waiting):  # noqa: ASYNC110
            await asyncio.sleep(0)  # the second checkout has not reached the gate yet
        during = await scrape(env)
    connection = await second
    await connection.close()
    after = await scrape(env)
    assert grew(before, during, in_use) == grew(before, during, waiting) == 1
    assert grew(before, after, in_use) == grew(before, after, waiting) == 0
