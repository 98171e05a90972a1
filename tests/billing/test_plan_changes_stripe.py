"""Plan changes on Stripe, against a real localstripe server: the item moves to the new plan at
once for an upgrade and at the renewal webhook for a downgrade; resume withdraws a cancellation.

localstripe takes no `proration_behavior` on a subscription update (a Python TypeError there, a
500), so the gateway sends none and Stripe prorates by its default (`create_prorations`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from gateway.db import models
from tests.billing.helpers import (
    SECRET,
    STRIPE_KEY,
    deliver,
    event,
    history,
    stripe_client,
    stripe_team,
    subscribe,
)
from tests.conftest import Client, Env
from tests.envelopes import data_of

pytestmark = pytest.mark.settings(
    payments_provider="stripe", stripe_api_key=STRIPE_KEY, stripe_webhook_secret=SECRET
)
BOTH = ("teams-monthly", "teams-yearly")


@pytest.fixture(autouse=True)
def _stripe_at_localstripe(monkeypatch: pytest.MonkeyPatch, localstripe: str) -> Iterator[None]:
    # Read by Settings for the env fixture (the server's URL is only known at run time).
    monkeypatch.setenv("GATEWAY_STRIPE_API_BASE", localstripe)
    yield


async def on_stripe_plan(
    env: Env, url: str, first: str, seats: int = 2
) -> tuple[Client, str, dict[str, str], str]:
    """An organization subscribed on Stripe to `first`, both teams plans known to Stripe:
    (owner, org id, plan name → id, Stripe subscription id)."""
    owner, org_id, _, _ = await stripe_team(env, url, plan_names=BOTH)
    plans = {p["name"]: p["id"] for p in data_of(await owner.get("/plans?type=teams"))}
    data_of(await subscribe(owner, org_id, plans[first], seats), 201)
    row = await env.scalar(select(models.Subscription))
    return owner, org_id, plans, row.provider_subscription_id


async def remote(url: str, provider_id: str) -> dict[str, Any]:
    found = await stripe_client(url).v1.subscriptions.retrieve_async(provider_id)
    return found.to_dict()


def item_of(subscription: dict[str, Any]) -> tuple[str, int]:
    item = subscription["items"]["data"][0]
    return item["plan"]["id"], item["quantity"]


async def test_upgrade_moves_the_stripe_item_at_once(env: Env, localstripe: str) -> None:
    owner, org_id, plans, provider_id = await on_stripe_plan(env, localstripe, "teams-yearly", 3)
    response = await owner.put(
        f"/organizations/{org_id}/plan", json={"planId": plans["teams-monthly"]}
    )
    data = data_of(response)
    assert data["plan"]["name"] == "teams-monthly" and data["pendingPlan"] is None
    assert item_of(await remote(localstripe, provider_id)) == ("gw_teams-monthly", 3)
    assert await history(env, org_id) == [("subscribed", 3), ("plan_changed", 3)]


async def test_downgrade_reaches_stripe_at_the_renewal_webhook(env: Env, localstripe: str) -> None:
    owner, org_id, plans, provider_id = await on_stripe_plan(env, localstripe, "teams-monthly")
    response = await owner.put(
        f"/organizations/{org_id}/plan", json={"planId": plans["teams-yearly"]}
    )
    assert data_of(response)["pendingPlan"]["name"] == "teams-yearly"
    assert item_of(await remote(localstripe, provider_id)) == ("gw_teams-monthly", 2)
    # Our row is one period behind Stripe: Stripe's current view is then a renewal.
    async with env.sessions() as session:
        row = (await session.execute(select(models.Subscription))).scalar_one()
        start, end = row.current_period_start, row.current_period_end
        assert start is not None and end is not None
        row.current_period_start, row.current_period_end = start - (end - start), start
        await session.commit()
    renewal = await remote(localstripe, provider_id)
    delivered = await deliver(env, event("customer.subscription.updated", renewal))
    assert delivered.status_code == 200, delivered.text
    assert item_of(await remote(localstripe, provider_id)) == ("gw_teams-yearly", 2)
    data = data_of(await owner.get(f"/organizations/{org_id}/plan"))
    assert data["plan"]["name"] == "teams-yearly"
    row = await env.scalar(select(models.Subscription))
    assert row.pending_plan_id is None
    assert sorted(await history(env, org_id)) == [
        ("plan_changed", 2),
        ("renewed", 2),
        ("subscribed", 2),
    ]
    # Stripe's event for our own item update records nothing more
    await deliver(
        env, event("customer.subscription.updated", await remote(localstripe, provider_id))
    )
    assert len(await history(env, org_id)) == 3


async def test_resume_withdraws_the_cancellation_at_stripe(env: Env, localstripe: str) -> None:
    owner, org_id, plans, provider_id = await on_stripe_plan(env, localstripe, "teams-monthly")
    await owner.delete(f"/organizations/{org_id}/plan/{plans['teams-monthly']}")
    assert (await remote(localstripe, provider_id))["cancel_at_period_end"] is True
    data = data_of(await owner.post(f"/organizations/{org_id}/plan/resume"))
    assert data["cancelAt"] is None and data["canceledAt"] is None
    assert (await remote(localstripe, provider_id))["cancel_at_period_end"] is False


async def test_upgrade_withdraws_the_cancellation_at_stripe(env: Env, localstripe: str) -> None:
    owner, org_id, plans, provider_id = await on_stripe_plan(env, localstripe, "teams-yearly")
    await owner.delete(f"/organizations/{org_id}/plan/{plans['teams-yearly']}")
    data = data_of(
        await owner.put(f"/organizations/{org_id}/plan", json={"planId": plans["teams-monthly"]})
    )
    assert data["cancelAt"] is None
    found = await remote(localstripe, provider_id)
    assert found["cancel_at_period_end"] is False
    assert item_of(found)[0] == "gw_teams-monthly"


async def test_downgrade_to_a_plan_not_on_stripe_is_422(env: Env, localstripe: str) -> None:
    owner, org_id, plans, _ = await on_stripe_plan(env, localstripe, "teams-monthly")
    async with env.sessions() as session:
        yearly = await session.get_one(models.Plan, plans["teams-yearly"])
        yearly.provider_price_id = None
        await session.commit()
    response = await owner.put(
        f"/organizations/{org_id}/plan", json={"planId": plans["teams-yearly"]}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "This plan cannot be purchased yet"
    assert (await env.scalar(select(models.Subscription))).pending_plan_id is None
