"""Helpers of the usage tests (no tests here): events, service-token ingestion, funding."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
from sqlalchemy import select

from gateway.billing.ledger import post_entry
from gateway.db import models
from tests.conftest import Client, Env

SERVICE_TOKEN = "service-token-for-tests"
_numbers = itertools.count(1)


def event(user_id: str | None, **overrides: Any) -> dict[str, Any]:
    """A valid usage event (REST/GraphQL field names) with a fresh generation id."""
    values: dict[str, Any] = {
        "generationId": f"gen_{next(_numbers):08d}",
        "provider": "openai",
        "model": "gpt-4o",
        "modelType": "chat",
        "promptTokens": 100,
        "completionTokens": 50,
        "costUsd": 0.0015,
        "credits": 2_000,
        "userId": user_id,
        "organizationId": None,
        "metadata": {},
    }
    values.update(overrides)
    return values


def service(env: Env) -> Client:
    return env.client(SERVICE_TOKEN)


async def ingest(env: Env, *events: dict[str, Any]) -> httpx.Response:
    return await service(env).post("/internal/usages", json={"events": list(events)})


async def ingest_ok(env: Env, *events: dict[str, Any]) -> dict[str, Any]:
    response = await ingest(env, *events)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def fund(env: Env, account: str, amount: int) -> None:
    async with env.sessions() as session:
        await post_entry(
            session,
            account_id=account,
            amount=amount,
            reason="payment",
            idempotency_key=f"fund:{account}:{next(_numbers)}",
        )
        await session.commit()


async def balance(env: Env, account: str) -> int:
    value: int = await env.scalar(
        select(models.Account.balance).where(models.Account.id == account)
    )
    return int(value)


async def member_id(env: Env, org_id: str, user_id: str | None) -> str:
    found: str = await env.scalar(
        select(models.Member.id).where(
            models.Member.organization_id == org_id, models.Member.user_id == user_id
        )
    )
    return found
