"""Whole batches of usage: statements per batch, and rows written by `insert_rows` as a
row-by-row insert writes them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import String, cast, select
from sqlmodel import SQLModel

from gateway.billing.ledger import sum_of_entries
from gateway.db import models
from gateway.db.bulk import insert_rows
from tests.conftest import Env
from tests.usage.helpers import event, ingest_ok


async def _statements_for(env: Env, events: list[dict[str, object]]) -> int:
    with env.counter.counting() as statements:
        data = await ingest_ok(env, *events)
    assert data["recorded"] == len(events)
    return len(statements)


async def test_a_batch_of_1000_events_costs_the_statements_of_a_batch_of_2(env: Env) -> None:
    if env.backend != "postgresql":
        pytest.skip("SQLite binds one parameter per value, so its lists come in 500s")
    owner = await env.user()
    org_id = await env.organization(owner)
    people = [owner, *[await env.member(org_id) for _ in range(3)]]

    def batch(size: int) -> list[dict[str, object]]:
        return [
            event(
                people[i % len(people)].user_id,
                organizationId=org_id if i % 2 else None,
                credits=10 + i,
            )
            for i in range(size)
        ]

    await ingest_ok(env, *batch(2))  # warm up: the first batch opens nothing the others do not
    assert await _statements_for(env, batch(1000)) == await _statements_for(env, batch(2))
    for person in people:
        account = await env.account_id(user_id=person.user_id)
        assert await _balance(env, account) == await _sum(env, account)


async def _balance(env: Env, account: str) -> int:
    return int(await env.scalar(select(models.Account.balance).where(models.Account.id == account)))


async def _sum(env: Env, account: str) -> int:
    async with env.sessions() as session:
        return await sum_of_entries(session, account)


async def test_insert_rows_writes_what_a_row_by_row_insert_writes(env: Env) -> None:
    alice = await env.user()
    account = await env.account_id(user_id=alice.user_id)
    stamp = datetime(2026, 11, 30, 12, 34, 56, 789_000, tzinfo=UTC)
    values = {
        "account_id": account,
        "user_id": alice.user_id,
        "organization_id": None,
        "provider_name": "openai",
        "model_name": "gpt-4o",
        "model_type_name": "chat",
        "operation": None,
        "prompt_tokens": 2**40,
        "completion_tokens": 0,
        "total_tokens": 2**40,
        "cost_micro_usd": 123,
        "credits_used": 7,
        "metadata_": {"app": "cli", "naïve": [1, 2.5, None, True], "nested": {"k": "é"}},
        "overdrawn": True,
        "created_at": stamp,
    }
    async with env.sessions() as session:
        session.add(models.UsageRecord(id="usg-row", generation_id="gen-row", **values))
        await session.flush()
        table = SQLModel.metadata.tables[models.UsageRecord.__tablename__]
        batch = {"id": "usg-batch", "generation_id": "gen-batch", **values}
        await insert_rows(session, table, [batch], keys={"metadata": "metadata_"})
        await session.commit()
    usage = models.UsageRecord
    rows = {
        row.UsageRecord.id: row
        for row in (
            await _rows(env, select(usage, cast(usage.metadata_, String).label("metadata_text")))
        )
    }
    by_row, by_batch = rows["usg-row"], rows["usg-batch"]
    # The JSON text itself, not only its value: PostgreSQL keeps a json column's text as sent.
    assert by_batch.metadata_text == by_row.metadata_text
    for name in values:
        assert getattr(by_batch.UsageRecord, name) == getattr(by_row.UsageRecord, name), name


async def _rows(env: Env, statement: object) -> list[object]:
    async with env.sessions() as session:
        return list(await session.execute(statement))  # type: ignore[call-overload]


async def test_a_batch_without_credits_is_recorded_with_no_ledger_entry(env: Env) -> None:
    alice = await env.user()
    account = await env.account_id(user_id=alice.user_id)
    data = await ingest_ok(env, event(alice.user_id, credits=0), event(alice.user_id, credits=0))
    assert (data["recorded"], data["overdrawn"]) == (2, 0)
    entries = await env.all(select(models.LedgerEntry).where(models.LedgerEntry.reason == "usage"))
    assert entries == []
    assert await _balance(env, account) == 0 == await _sum(env, account)
