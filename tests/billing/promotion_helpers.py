"""Helpers of the promotions tests (no tests here): promotions created as the operator does,
redeemed over REST, and an account's promotional history moved back in time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from gateway.db import models
from tests.conftest import Client, Env
from tests.documents import mutation
from tests.envelopes import data_of

SERVICE_TOKEN = "service-token-for-tests"

CREATE = mutation(
    "createPromotion",
    "promotion { id code description credits startsAt expiresAt redeemedAt "
    "maxRedemptions redemptionCount }",
)
END = mutation("endPromotion", "promotion { id expiresAt }")
REDEEM = mutation("redeemPromotion", "payment { id kind status credits amountCents }")


def service(env: Env) -> Client:
    return env.client(SERVICE_TOKEN)


async def create(env: Env, code: str, credits: int, **fields: Any) -> dict[str, Any]:
    """A promotion created through the service token's mutation; its GraphQL object."""
    data = await service(env).gql_data(
        CREATE, {"input": {"code": code, "credits": credits, **fields}}
    )
    payload = data["createPromotion"]
    assert payload["errors"] == [], payload
    promotion: dict[str, Any] = payload["promotion"]
    return promotion


def base(client: Client, org_id: str | None = None) -> str:
    return f"/organizations/{org_id}" if org_id else f"/users/{client.user_id}"


async def redeem(client: Client, code: str, org_id: str | None = None) -> Any:
    return await client.post(f"{base(client, org_id)}/promotions/redeem", json={"code": code})


async def balance(client: Client, org_id: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = data_of(await client.get(f"{base(client, org_id)}/balance"))
    return found


async def rewind(env: Env, account_id: str, by: timedelta) -> None:
    """As if `by` had passed since the account's redemptions and ledger entries: their times
    move back (the clock cannot move forward in a test)."""
    async with env.sessions() as session:
        redemptions = (
            await session.execute(
                select(models.PromotionRedemption).where(
                    col(models.PromotionRedemption.account_id) == account_id
                )
            )
        ).scalars()
        for r in redemptions:
            assert r.expires_at is not None and r.settled_at is not None
            r.redeemed_at, r.expires_at, r.settled_at = (
                r.redeemed_at - by,
                r.expires_at - by,
                r.settled_at - by,
            )
        entries = (
            await session.execute(
                select(models.LedgerEntry).where(col(models.LedgerEntry.account_id) == account_id)
            )
        ).scalars()
        for entry in entries:
            entry.created_at -= by
        await session.commit()
