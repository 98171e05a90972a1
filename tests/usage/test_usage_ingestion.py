"""Usage ingestion: service token only, idempotent by generation id, debited atomically."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.billing.ledger import sum_of_entries
from gateway.db import models
from resolvers import usage as usage_resolvers
from resolvers.usage import ingestion as usage_ingestion
from tests.conftest import Env
from tests.usage.helpers import (
    balance,
    event,
    fund,
    ingest,
    ingest_ok,
    service,
)

RECORD_USAGE = """
mutation ($input: RecordUsageInput!) {
  recordUsage(input: $input) {
    errors { code message field }
    usage { id generationId creditsUsed costMicroUsd organizationId overdrawn }
    duplicate
    overdrawn
  }
}
"""

RECORD_USAGES = """
mutation ($input: RecordUsagesInput!) {
  recordUsages(input: $input) {
    errors { code message field }
    results { duplicate overdrawn usage { id generationId } }
  }
}
"""


async def _rows(env: Env) -> tuple[list[models.UsageRecord], list[models.LedgerEntry]]:
    usages = await env.all(select(models.UsageRecord).order_by(models.UsageRecord.id))
    entries = await env.all(select(models.LedgerEntry).where(models.LedgerEntry.reason == "usage"))
    return usages, entries


async def test_event_is_recorded_and_debits_the_personal_account(env: Env) -> None:
    alice = await env.user()
    account = await env.account_id(user_id=alice.user_id)
    await fund(env, account, 10_000)
    sent = event(alice.user_id, credits=2_500, metadata={"app": "cli"})
    response = await ingest(env, sent)

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    [item] = body["data"]["items"]
    assert set(item) == {"id", "generationId", "duplicate", "overdrawn", "creditsUsed"}
    assert item["id"].startswith("usg-")
    assert item == {
        "id": item["id"],
        "generationId": sent["generationId"],
        "duplicate": False,
        "overdrawn": False,
        "creditsUsed": 2_500,
    }
    assert body["data"]["recorded"] == 1
    assert body["data"]["duplicates"] == 0
    assert body["data"]["overdrawn"] == 0
    [record], [entry] = await _rows(env)
    assert record.id == item["id"]
    assert record.account_id == account
    assert record.organization_id is None
    assert record.metadata_ == {"app": "cli"}
    assert (entry.account_id, entry.amount, entry.balance_after) == (account, -2_500, 7_500)
    assert entry.idempotency_key == f"usage:{sent['generationId']}"
    assert entry.reference_id == record.id
    assert await balance(env, account) == 7_500


async def test_single_event_object_body_is_a_batch_of_one(env: Env) -> None:
    alice = await env.user()
    sent = event(alice.user_id)
    response = await service(env).post("/internal/usages", json=sent)
    assert response.status_code == 200
    assert [i["generationId"] for i in response.json()["data"]["items"]] == [sent["generationId"]]


async def test_organization_event_debits_the_organization_account(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    personal = await env.account_id(user_id=alice.user_id)
    org_account = await env.account_id(org_id=org_id)
    await ingest_ok(env, event(alice.user_id, organizationId=org_id, credits=700))
    [record], [entry] = await _rows(env)
    assert record.account_id == org_account and record.organization_id == org_id
    assert entry.account_id == org_account
    assert await balance(env, org_account) == -700
    assert await balance(env, personal) == 0


async def test_retried_event_is_recorded_and_debited_once(env: Env) -> None:
    alice = await env.user()
    account = await env.account_id(user_id=alice.user_id)
    await fund(env, account, 10_000)
    sent = event(alice.user_id, credits=1_000)
    first = (await ingest_ok(env, sent))["items"][0]
    again = await ingest_ok(env, sent)
    assert again["items"] == [{**first, "duplicate": True}]
    assert (again["recorded"], again["duplicates"]) == (0, 1)
    usages, entries = await _rows(env)
    assert len(usages) == 1 and len(entries) == 1
    assert await balance(env, account) == 9_000


async def test_generation_id_repeated_in_one_batch_is_recorded_once(env: Env) -> None:
    alice = await env.user()
    sent = event(alice.user_id, credits=400)
    data = await ingest_ok(env, sent, {**sent, "credits": 999})
    assert [i["duplicate"] for i in data["items"]] == [False, True]
    assert data["items"][0]["id"] == data["items"][1]["id"]
    usages, entries = await _rows(env)
    assert len(usages) == 1 and [e.amount for e in entries] == [-400]


async def test_event_overdrawing_the_balance_is_recorded_and_flagged(env: Env) -> None:
    alice = await env.user()
    account = await env.account_id(user_id=alice.user_id)
    await fund(env, account, 1_000)
    data = await ingest_ok(
        env, event(alice.user_id, credits=600), event(alice.user_id, credits=600)
    )
    assert [i["overdrawn"] for i in data["items"]] == [False, True]
    assert data["overdrawn"] == 1
    usages, _ = await _rows(env)
    assert [u.overdrawn for u in usages] == [False, True]
    assert await balance(env, account) == -200


async def test_batch_keeps_the_ledger_invariant_across_accounts(env: Env) -> None:
    alice = await env.user()
    bob = await env.user()
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob)
    accounts = {
        "alice": await env.account_id(user_id=alice.user_id),
        "bob": await env.account_id(user_id=bob.user_id),
        "org": await env.account_id(org_id=org_id),
    }
    await fund(env, accounts["org"], 5_000)
    await ingest_ok(
        env,
        event(alice.user_id, credits=100),
        event(bob.user_id, organizationId=org_id, credits=2_000),
        event(alice.user_id, organizationId=org_id, credits=1_000),
        event(bob.user_id, credits=0),
        event(alice.user_id, credits=300),
    )
    org_entries = await env.all(
        select(models.LedgerEntry)
        .where(
            models.LedgerEntry.account_id == accounts["org"],
            models.LedgerEntry.reason == "usage",
        )
        .order_by(models.LedgerEntry.balance_after.desc())
    )
    assert [(e.amount, e.balance_after) for e in org_entries] == [(-2_000, 3_000), (-1_000, 2_000)]
    expected = {"alice": -400, "bob": 0, "org": 2_000}
    async with env.sessions() as session:
        for name, account in accounts.items():
            assert await balance(env, account) == expected[name]
            assert await sum_of_entries(session, account) == expected[name]
    # A free event is recorded without a ledger entry.
    assert await env.scalar(select(func.count()).select_from(models.UsageRecord)) == 5
    assert await env.scalar(select(func.count()).select_from(models.LedgerEntry)) == 5


async def test_cost_is_stored_in_micro_usd_and_total_tokens_default_to_the_sum(env: Env) -> None:
    alice = await env.user()
    await ingest_ok(env, event(alice.user_id, costUsd=0.000123, promptTokens=7, completionTokens=5))
    await ingest_ok(env, event(alice.user_id, costUsd=2, totalTokens=99))
    first, second = (await _rows(env))[0]
    assert (first.cost_micro_usd, first.total_tokens) == (123, 12)
    assert (second.cost_micro_usd, second.total_tokens) == (2_000_000, 99)


async def test_created_at_is_kept_and_orders_the_history(env: Env) -> None:
    alice = await env.user()
    older = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    await ingest_ok(env, event(alice.user_id, generationId="new"))
    await ingest_ok(
        env, event(alice.user_id, generationId="old", createdAt="2026-01-02T03:04:05.123456Z")
    )
    usages, _ = await _rows(env)
    assert [u.generation_id for u in usages] == ["old", "new"]
    assert usages[0].created_at == older


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"credits": -1}, "events[1].credits"),
        ({"promptTokens": -5}, "events[1].promptTokens"),
        ({"costUsd": -0.5}, "events[1].costUsd"),
        ({"generationId": "  "}, "events[1].generationId"),
        ({"model": ""}, "events[1].model"),
        ({"createdAt": "2020-01-01T00:00:00"}, "events[1].createdAt"),
        ({"metadata": {"blob": "x" * 20_000}}, "events[1].metadata"),
        ({"generationId": "g" * 250}, "events[1].generationId"),
    ],
)
async def test_invalid_event_rejects_the_whole_batch_with_400(
    env: Env, override: dict[str, Any], field: str
) -> None:
    alice = await env.user()
    response = await ingest(env, event(alice.user_id), event(alice.user_id, **override))
    assert response.status_code == 400, response.text
    assert response.json()["success"] is False
    assert field in response.json()["error"]
    assert await _rows(env) == ([], [])


async def test_event_from_the_future_is_refused(env: Env) -> None:
    alice = await env.user()
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = await ingest(env, event(alice.user_id, createdAt=future))
    assert response.status_code == 400
    assert "createdAt" in response.json()["error"]


async def test_malformed_event_is_400(env: Env) -> None:
    alice = await env.user()
    sent = event(alice.user_id)
    del sent["model"]
    response = await ingest(env, sent, event(alice.user_id, credits="lots"))
    assert response.status_code == 400
    assert "model" in response.json()["error"]


async def test_empty_and_oversized_batches_are_400(env: Env) -> None:
    alice = await env.user()
    assert (await ingest(env)).status_code == 400
    too_many = [event(alice.user_id) for _ in range(usage_resolvers.MAX_EVENTS_PER_BATCH + 1)]
    response = await ingest(env, *too_many)
    assert response.status_code == 400
    assert "at most 1000" in response.json()["error"]


async def test_unknown_user_or_foreign_organization_is_422_and_writes_nothing(env: Env) -> None:
    alice = await env.user()
    bob = await env.user()
    org_id = await env.organization(alice)
    cases = [
        (event("usr-01JAAAAAAAAAAAAAAAAAAAAAAA"), "events[1].userId"),
        (event(bob.user_id, organizationId=org_id), "not a member"),
        (event(alice.user_id, organizationId="org-01JAAAAAAAAAAAAAAAAAAAAAAA"), "not found"),
    ]
    for bad, message in cases:
        response = await ingest(env, event(alice.user_id), bad)
        assert response.status_code == 422, response.text
        assert message in response.json()["error"]
    assert await _rows(env) == ([], [])


async def test_failed_ingestion_leaves_neither_usage_row_nor_ledger_entry(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await env.user()
    account = await env.account_id(user_id=alice.user_id)
    await fund(env, account, 5_000)
    written: list[int] = []

    async def failing_usage_insert(session: Any, rows: Any) -> None:
        # The ledger entries and the balance update are in the transaction already.
        written.append(
            await session.scalar(select(func.count()).where(models.LedgerEntry.reason == "usage"))
        )
        raise RuntimeError("database went away")

    monkeypatch.setattr(usage_ingestion, "_insert_usage_rows", failing_usage_insert)
    response = await ingest(env, event(alice.user_id, credits=1_000), event(alice.user_id))
    assert response.status_code == 500
    assert written == [2]
    assert await _rows(env) == ([], [])
    assert await balance(env, account) == 5_000


async def test_ingestion_needs_the_service_token(env: Env) -> None:
    alice = await env.user()
    sent = event(alice.user_id)
    for client in (alice, env.anonymous, env.client("wrong-token")):
        response = await client.post("/internal/usages", json={"events": [sent]})
        assert response.status_code == 401
        assert response.json()["success"] is False
    body = await alice.gql(RECORD_USAGE, {"input": sent})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await _rows(env) == ([], [])


async def test_graphql_record_usage_reports_duplicates_and_overdraft(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    sent = event(alice.user_id, organizationId=org_id, credits=5, costUsd=0.25)
    first = (await service(env).gql_data(RECORD_USAGE, {"input": sent}))["recordUsage"]
    assert first["errors"] == []
    assert first["duplicate"] is False and first["overdrawn"] is True
    assert first["usage"]["generationId"] == sent["generationId"]
    assert first["usage"]["costMicroUsd"] == 250_000
    assert first["usage"]["organizationId"] == org_id
    again = (await service(env).gql_data(RECORD_USAGE, {"input": sent}))["recordUsage"]
    assert again["duplicate"] is True and again["usage"]["id"] == first["usage"]["id"]


async def test_graphql_record_usages_returns_typed_errors_and_writes_nothing(env: Env) -> None:
    alice = await env.user()
    good, bad = event(alice.user_id), event(alice.user_id, credits=-3)
    data = await service(env).gql_data(RECORD_USAGES, {"input": {"events": [good, bad]}})
    assert data["recordUsages"]["results"] is None
    assert data["recordUsages"]["errors"] == [
        {
            "code": "VALIDATION_FAILED",
            "message": f"events[1].credits must be an integer between 0 and {2**62 - 1}",
            "field": "events[1].credits",
        }
    ]
    assert await _rows(env) == ([], [])
    data = await service(env).gql_data(RECORD_USAGES, {"input": {"events": [good, good]}})
    results = data["recordUsages"]["results"]
    assert [r["duplicate"] for r in results] == [False, True]


async def test_concurrent_retries_record_and_debit_once(env: Env) -> None:
    alice = await env.user()
    account = await env.account_id(user_id=alice.user_id)
    batch = [event(alice.user_id, credits=100) for _ in range(20)]
    responses = await asyncio.gather(*(ingest(env, *batch) for _ in range(4)))
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    recorded = [r.json()["data"]["recorded"] for r in responses]
    assert sorted(recorded) == [0, 0, 0, 20]
    usages, entries = await _rows(env)
    assert len(usages) == 20 and len(entries) == 20
    assert await balance(env, account) == -2_000


async def test_debit_below_the_auto_top_up_threshold_starts_a_top_up(env: Env) -> None:
    alice = await env.user()
    base = f"/users/{alice.user_id}"
    await alice.post(f"{base}/payment-method/setup-session", json={})
    settings = {"enabled": True, "threshold": 5_000_000, "amountCents": 1000}
    assert (await alice.put(f"{base}/auto-top-up", json=settings)).status_code == 200
    await alice.post("/users/credits/checkout", json={"amountCents": 500})  # 5 USD
    account = await env.account_id(user_id=alice.user_id)
    assert await balance(env, account) == 5_000_000
    await ingest_ok(env, event(alice.user_id, credits=4_000_000))
    payments = await env.all(
        select(models.Payment).where(
            models.Payment.account_id == account, models.Payment.kind == "auto_top_up"
        )
    )
    assert [p.status for p in payments] == ["succeeded"]
    assert await balance(env, account) == 1_000_000 + 10_000_000
    # Above the threshold again: the next usage starts nothing.
    await ingest_ok(env, event(alice.user_id, credits=1_000))
    assert (
        await env.scalar(
            select(func.count())
            .select_from(models.Payment)
            .where(models.Payment.kind == "auto_top_up")
        )
        == 1
    )


async def test_longest_generation_id_fits_the_ledger_key(env: Env) -> None:
    alice = await env.user()
    longest = "g" * usage_resolvers.MAX_GENERATION_ID
    await ingest_ok(env, event(alice.user_id, generationId=longest, metadata=None))
    [record], [entry] = await _rows(env)
    assert record.generation_id == longest and record.metadata_ == {}
    assert entry.idempotency_key == f"usage:{longest}"
