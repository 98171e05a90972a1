"""Promotional credits: spent before paid ones (soonest expiry first), and what is left of them
leaves the balance at expiry through one ledger entry, settled on a balance read or by the
sweep (`gateway promotions expire`), once however many settle at the same time."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gateway.app import sweep_promotions
from gateway.billing import promotions
from gateway.billing.ledger import sum_of_entries
from gateway.cli import main
from gateway.db import models
from gateway.db.models import utcnow
from tests.billing.promotion_helpers import balance, create, redeem, rewind, service
from tests.conftest import Client, Env
from tests.envelopes import data_of

CREDITS_PER_CENT = 10_000
PAID = 1_000 * CREDITS_PER_CENT  # a 10 USD checkout
_generations = itertools.count(1)


async def buy(client: Client) -> None:
    response = await client.post("/users/credits/checkout", json={"amountCents": 1_000})
    assert data_of(response, 201)["status"] == "succeeded"


async def spend(env: Env, client: Client, credits: int) -> None:
    """Usage recorded by the inference service: a debit of the caller's active account."""
    event = {
        "generationId": f"gen_promo_{next(_generations)}",
        "provider": "openai",
        "model": "gpt-4o",
        "modelType": "chat",
        "promptTokens": 1,
        "completionTokens": 1,
        "costUsd": 0.001,
        "credits": credits,
        "userId": client.user_id,
    }
    response = await service(env).post("/internal/usages", json={"events": [event]})
    assert response.status_code == 200, response.text


async def create_expiring(env: Env, code: str, credits: int) -> None:
    """A promotion whose credits expire a day after now."""
    await create(env, code, credits, expiresAt=(utcnow() + timedelta(days=1)).isoformat())


async def outlived(env: Env, client: Client, code: str) -> str:
    """The client's account after it redeemed 3,000,000 credits of a new promotion and two
    days passed: the credits expired a day ago, not settled yet."""
    await create_expiring(env, code, 3_000_000)
    await redeem(client, code)
    account_id = await env.account_id(user_id=client.user_id)
    await rewind(env, account_id, timedelta(days=2))
    return account_id


async def expiry_entries(env: Env, account_id: str) -> list[int]:
    entries = await env.all(
        select(models.LedgerEntry).where(
            models.LedgerEntry.account_id == account_id,
            models.LedgerEntry.reason == promotions.EXPIRY_REASON,
        )
    )
    return [entry.amount for entry in entries]


async def ledger_is_exact(env: Env, account_id: str) -> bool:
    async with env.sessions() as session:
        stored = await session.scalar(
            select(models.Account.balance).where(models.Account.id == account_id)
        )
        return stored == await sum_of_entries(session, account_id)


async def test_promotional_credits_are_spent_before_paid_ones(env: Env) -> None:
    alice = await env.user()
    await buy(alice)
    promotion = await create(env, "FIRST", 3_000_000)
    await redeem(alice, "FIRST")
    await spend(env, alice, 1_000_000)
    assert await balance(alice) == {
        "balance": PAID + 2_000_000,
        "userId": alice.user_id,
        "promotionalBalance": 2_000_000,
        "promotionalExpiresAt": promotion["expiresAt"],
    }


async def test_spending_past_the_promotional_part_leaves_none_to_expire(env: Env) -> None:
    alice = await env.user()
    await buy(alice)
    await create(env, "SMALL", 3_000_000)
    await redeem(alice, "SMALL")
    await spend(env, alice, 4_000_000)
    shown = await balance(alice)
    assert (shown["balance"], shown["promotionalBalance"]) == (PAID - 1_000_000, 0)
    assert shown["promotionalExpiresAt"] is None


async def test_unspent_promotional_credits_expire_through_one_ledger_entry(env: Env) -> None:
    alice = await env.user()
    account_id = await env.account_id(user_id=alice.user_id)
    await buy(alice)
    await create_expiring(env, "FADES", 3_000_000)
    await redeem(alice, "FADES")
    await spend(env, alice, 1_000_000)
    await rewind(env, account_id, timedelta(days=2))
    shown = await balance(alice)
    assert (shown["balance"], shown["promotionalBalance"]) == (PAID, 0)
    assert shown["promotionalExpiresAt"] is None
    assert await expiry_entries(env, account_id) == [-2_000_000]
    # Read again: nothing more leaves.
    assert (await balance(alice))["balance"] == PAID
    assert await expiry_entries(env, account_id) == [-2_000_000]
    assert await ledger_is_exact(env, account_id)


async def holds_promotions(env: Env, account_id: str) -> bool:
    flag: bool = await env.scalar(
        select(models.Account.holds_promotions).where(models.Account.id == account_id)
    )
    return flag


async def test_an_account_holds_promotions_from_redemption_to_expiry(env: Env) -> None:
    """The account's flag spares balance reads the redemptions: set by the redemption,
    cleared by the settlement that expires the last of its credits."""
    alice = await env.user()
    account_id = await env.account_id(user_id=alice.user_id)
    assert not await holds_promotions(env, account_id)
    await create_expiring(env, "FLAG", 3_000_000)
    await redeem(alice, "FLAG")
    assert await holds_promotions(env, account_id)
    await rewind(env, account_id, timedelta(days=2))
    assert (await balance(alice))["promotionalBalance"] == 0
    assert not await holds_promotions(env, account_id)
    with env.counter.counting() as statements:
        await balance(alice)
    assert not [s for s in statements if "promotion_redemptions" in s]


async def test_an_account_whose_promotional_credits_are_spent_stops_holding_them(
    env: Env,
) -> None:
    alice = await env.user()
    account_id = await env.account_id(user_id=alice.user_id)
    await create_expiring(env, "SPENT", 1_000_000)
    await redeem(alice, "SPENT")
    await spend(env, alice, 1_000_000)
    await rewind(env, account_id, timedelta(days=2))
    assert (await balance(alice))["balance"] == 0
    assert not await holds_promotions(env, account_id)
    assert await expiry_entries(env, account_id) == []


async def test_spending_after_the_expiry_is_not_charged_to_expired_credits(env: Env) -> None:
    alice = await env.user()
    await buy(alice)
    account_id = await outlived(env, alice, "LATE")
    # Expired a day ago, not settled yet: this spending comes from the paid credits.
    await spend(env, alice, 1_000_000)
    shown = await balance(alice)
    assert (shown["balance"], shown["promotionalBalance"]) == (PAID - 1_000_000, 0)
    assert await expiry_entries(env, account_id) == [-3_000_000]


async def test_the_soonest_expiring_promotion_is_spent_first(env: Env) -> None:
    alice = await env.user()
    account_id = await env.account_id(user_id=alice.user_id)
    await buy(alice)
    soon = (utcnow() + timedelta(days=1)).isoformat()
    await create(env, "LATER", 3_000_000, expiresAt=(utcnow() + timedelta(days=3)).isoformat())
    await create(env, "SOONER", 3_000_000, expiresAt=soon)
    await redeem(alice, "LATER")
    await redeem(alice, "SOONER")
    await spend(env, alice, 4_000_000)
    await rewind(env, account_id, timedelta(days=2))
    shown = await balance(alice)
    # SOONER was spent whole before it expired; LATER keeps 2 of its 3.
    assert await expiry_entries(env, account_id) == []
    assert (shown["balance"], shown["promotionalBalance"]) == (PAID + 2_000_000, 2_000_000)


async def test_graphql_balances_show_the_promotional_part(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    promotion = await create(env, "BOTH", 3_000_000)
    await redeem(alice, "BOTH")
    await redeem(alice, "BOTH", org_id)
    fields = "amount promotionalAmount promotionalExpiresAt"
    data = await alice.gql_data(
        f"query($org: ID!) {{ viewer {{ balance {{ {fields} }} billingAccount {{ balance "
        f"{{ {fields} }} }} }} organization(id: $org) {{ balance {{ {fields} }} }} }}",
        {"org": org_id},
    )
    expected = {
        "amount": 3_000_000,
        "promotionalAmount": 3_000_000,
        "promotionalExpiresAt": promotion["expiresAt"],
    }
    assert data["viewer"]["balance"] == expected
    assert data["viewer"]["billingAccount"]["balance"] == expected
    assert data["organization"]["balance"] == expected


async def test_a_graphql_balance_read_settles_expired_credits(env: Env) -> None:
    alice = await env.user()
    await buy(alice)
    account_id = await outlived(env, alice, "GQLFADE")
    fields = "amount promotionalAmount promotionalExpiresAt"
    data = await alice.gql_data(
        f"{{ viewer {{ balance {{ {fields} }} billingAccount {{ balance {{ {fields} }} }} }} }}"
    )
    expected = {"amount": PAID, "promotionalAmount": 0, "promotionalExpiresAt": None}
    assert data["viewer"]["balance"] == expected
    assert data["viewer"]["billingAccount"]["balance"] == expected
    assert await expiry_entries(env, account_id) == [-3_000_000]


@pytest.mark.settings(database_pool_size=8)
async def test_two_concurrent_settlements_post_one_entry(env: Env) -> None:
    alice = await env.user()
    account_id = await outlived(env, alice, "RACE")
    now = utcnow()

    async def settle() -> int:
        async with env.sessions() as session:
            part = await promotions.settle(session, account_id, now)
            await session.commit()
            return part.expired

    expired = await asyncio.gather(settle(), settle())
    assert sorted(expired) == [0, 3_000_000]
    assert await expiry_entries(env, account_id) == [-3_000_000]
    assert await ledger_is_exact(env, account_id)


def _cli(env: Env, *argv: str) -> int:
    return main(["promotions", *argv], env.settings)


async def test_cli_creates_a_promotion_through_the_same_rules(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    owner = await env.user()
    org_id = await env.organization(owner)
    code = await asyncio.to_thread(
        _cli,
        env,
        "create",
        "--code=cli-team",
        "--credits=2000000",
        "--expires=2099-01-31",
        "--max-redemptions=3",
        f"--organization={org_id}",
    )
    out = capsys.readouterr().out
    assert code == 0 and "code: CLI-TEAM" in out and "redemptions: 0 of 3" in out
    [listed] = data_of(await owner.get(f"/organizations/{org_id}/promotions"))["items"]
    assert (listed["code"], listed["credits"]) == ("CLI-TEAM", 2_000_000)
    assert listed["expiresAt"] == "2099-01-31T00:00:00.000000Z"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--code=OK1", "--credits=0"], "error (credits)"),
        (["--code=OK1", "--credits=5", "--expires=2001-01-01"], "error (expiresAt)"),
        (["--code=OK1", "--credits=5", "--user=usr-01KZZZZZZZZZZZZZZZZZZZZZZZ"], "User not found"),
    ],
    ids=["no-credits", "expired", "unknown-user"],
)
async def test_cli_refuses_a_bad_promotion_with_its_reason(
    env: Env, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert await asyncio.to_thread(_cli, env, "create", *argv) == 1
    assert message in capsys.readouterr().err
    assert await env.all(select(models.Promotion)) == []


async def test_cli_sweep_expires_due_credits_once(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    alice, bob = await env.user(), await env.user()
    await create_expiring(env, "SWEPT", 3_000_000)
    for client in (alice, bob):
        await redeem(client, "SWEPT")
        await rewind(env, await env.account_id(user_id=client.user_id), timedelta(days=2))
    assert await asyncio.to_thread(_cli, env, "expire") == 0
    assert "settled 2 accounts; 6000000 micro-credits expired" in capsys.readouterr().out
    assert await asyncio.to_thread(_cli, env, "expire") == 0
    assert "settled 0 accounts; 0 micro-credits expired" in capsys.readouterr().out
    for client in (alice, bob):
        account_id = await env.account_id(user_id=client.user_id)
        assert await expiry_entries(env, account_id) == [-3_000_000]
        stored: Any = await env.scalar(
            select(models.Account.balance).where(models.Account.id == account_id)
        )
        assert stored == 0


async def test_cli_ends_a_promotion(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    alice = await env.user()
    promotion = await create(env, "CLIEND", 1_000)
    assert await asyncio.to_thread(_cli, env, "end", promotion["id"]) == 0
    assert promotion["id"] in capsys.readouterr().out
    response = await redeem(alice, "CLIEND")
    assert response.status_code == 404


@pytest.mark.settings(promotion_sweep_seconds=0.01)
async def test_the_servers_periodic_sweep_expires_credits_nobody_reads(env: Env) -> None:
    alice = await env.user()
    account_id = await outlived(env, alice, "UNREAD")
    stop = asyncio.Event()
    sweeper = asyncio.create_task(sweep_promotions(env.state, stop))
    try:
        # Until the sweep has run (its outcome is checked, not how soon it came).
        for _ in range(1_000):
            if await expiry_entries(env, account_id):
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await sweeper
    assert await expiry_entries(env, account_id) == [-3_000_000]
    assert await ledger_is_exact(env, account_id)
