"""Plan changes on the sandbox: upgrade at once, downgrade at period end, resume, and the end of
a period (renewal into the pending plan, a cancellation taking effect), on REST and GraphQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gateway.billing.subscriptions import is_upgrade
from gateway.db import models
from resolvers.plan_catalog import DEFAULT_PLANS, PlanSpec
from tests.billing.helpers import history, seed, subscribe
from tests.conftest import Client, Env
from tests.documents import mutation
from tests.envelopes import assert_refused, data_of

PLUS: PlanSpec = {
    "name": "teams-plus",
    "display_name": "Teams Plus",
    "type": "teams",
    "interval": "Monthly",
    "price_per_seat_cents": 5_000,
}
SUBSCRIPTION = """subscription { id seats cancelAt canceledAt seatsAvailable
    plan { name } pendingPlan { name } }"""
CHANGE_PLAN = mutation("changePlan", SUBSCRIPTION)
RESUME = mutation("resumeSubscription", SUBSCRIPTION)
HISTORY = """query($id: ID!) { node(id: $id) { ... on Organization {
    planHistory(first: 10) { nodes { action seats plan { name } } } } } }"""


async def on_plan(
    env: Env, members: int = 0, seats: int = 3, plan: str = "teams-monthly"
) -> tuple[Client, str, dict[str, str]]:
    """An owner and their organization (with `members` more) subscribed to `plan` with
    `seats`, the catalog holding `teams-plus` too: (owner, org id, plan name → id)."""
    plans = await seed(env, [*DEFAULT_PLANS, PLUS])
    owner = await env.user()
    org_id = await env.organization(owner)
    for _ in range(members):
        await env.add_member(org_id, await env.user())
    data_of(await subscribe(owner, org_id, plans[plan], seats), 201)
    return owner, org_id, plans


async def change(client: Client, org_id: str, body: dict[str, Any]) -> Any:
    return await client.put(f"/organizations/{org_id}/plan", json=body)


async def period_over(env: Env) -> None:
    """Time passes: the (one) subscription's current period ended a minute ago."""
    async with env.sessions() as session:
        row = (await session.execute(select(models.Subscription))).scalar_one()
        start, end = row.current_period_start, row.current_period_end
        assert start is not None and end is not None
        back = end - start + timedelta(minutes=1)
        row.current_period_start, row.current_period_end = start - back, end - back
        if row.cancel_at is not None:
            row.cancel_at = row.current_period_end
        await session.commit()


@pytest.mark.parametrize(
    ("current", "target", "upgrade"),
    [
        pytest.param(("Monthly", 3_000), ("Monthly", 5_000), True, id="dearer-per-month"),
        pytest.param(("Monthly", 3_000), ("Yearly", 30_000), False, id="yearly-cheaper-per-month"),
        pytest.param(("Yearly", 30_000), ("Monthly", 3_000), True, id="monthly-dearer-per-month"),
        pytest.param(("Monthly", 2_500), ("Yearly", 30_000), False, id="equal-price-is-no-upgrade"),
    ],
)
def test_upgrade_is_a_higher_price_per_seat_per_month(
    current: tuple[str, int], target: tuple[str, int], upgrade: bool
) -> None:
    def plan(interval: str, price: int) -> models.Plan:
        return models.Plan(
            name="p", display_name="P", type="teams", interval=interval, price_per_seat_cents=price
        )

    assert is_upgrade(plan(*current), plan(*target)) is upgrade


async def test_upgrade_takes_effect_at_once_and_keeps_the_seats(env: Env) -> None:
    owner, org_id, plans = await on_plan(env, seats=4)
    data = data_of(await change(owner, org_id, {"planId": plans["teams-plus"]}))
    assert data["plan"]["name"] == "teams-plus" and data["pendingPlan"] is None
    assert data["seats"] == 4 and data["status"] == "active"
    assert (await owner.get(f"/organizations/{org_id}/plan")).json()["data"]["plan"]["id"] == (
        plans["teams-plus"]
    )
    assert await history(env, org_id) == [("subscribed", 4), ("plan_changed", 4)]


async def test_rest_history_shows_a_plan_change_as_subscribed_to_the_new_plan(env: Env) -> None:
    owner, org_id, plans = await on_plan(env)
    await change(owner, org_id, {"planId": plans["teams-plus"]})
    items = data_of(await owner.get(f"/organizations/{org_id}/plan/history"))["items"]
    assert [(i["action"], i["plan"]["name"]) for i in items] == [
        ("subscribed", "teams-plus"),
        ("subscribed", "teams-monthly"),
    ]


async def test_change_with_seats_sets_them_with_the_plan(env: Env) -> None:
    owner, org_id, plans = await on_plan(env, members=1, seats=2)
    data = data_of(await change(owner, org_id, {"planId": plans["teams-plus"], "seats": 5}))
    assert data["seats"] == 5 and data["plan"]["name"] == "teams-plus"


async def test_downgrade_waits_for_the_end_of_the_period(env: Env) -> None:
    owner, org_id, plans = await on_plan(env)
    data = data_of(await change(owner, org_id, {"planId": plans["teams-yearly"]}))
    assert data["plan"]["name"] == "teams-monthly"
    assert data["pendingPlan"]["id"] == plans["teams-yearly"]
    assert await history(env, org_id) == [("subscribed", 3)]


async def test_downgrade_with_seats_changes_the_seats_now(env: Env) -> None:
    owner, org_id, plans = await on_plan(env, seats=3)
    data = data_of(await change(owner, org_id, {"planId": plans["teams-yearly"], "seats": 6}))
    assert data["seats"] == 6 and data["plan"]["name"] == "teams-monthly"
    assert await history(env, org_id) == [("subscribed", 3), ("seats_changed", 6)]


async def test_pending_downgrade_becomes_the_plan_when_the_period_renews(env: Env) -> None:
    owner, org_id, plans = await on_plan(env)
    await change(owner, org_id, {"planId": plans["teams-yearly"]})
    await period_over(env)
    # the sandbox ends periods before the next write to the subscription
    data = data_of(await owner.put(f"/organizations/{org_id}/plan/seats", json={"seats": 3}))
    assert data["plan"]["name"] == "teams-yearly"
    row = await env.scalar(select(models.Subscription))
    assert row.pending_plan_id is None
    assert row.current_period_end - row.current_period_start >= timedelta(days=365)
    assert sorted(await history(env, org_id)) == [
        ("plan_changed", 3),
        ("renewed", 3),
        ("subscribed", 3),
    ]


async def test_a_later_choice_replaces_a_pending_downgrade(env: Env) -> None:
    owner, org_id, plans = await on_plan(env, plan="teams-plus")
    await change(owner, org_id, {"planId": plans["teams-yearly"]})
    data = data_of(await change(owner, org_id, {"planId": plans["teams-monthly"]}))
    assert data["pendingPlan"]["name"] == "teams-monthly"


async def test_upgrade_ends_a_pending_downgrade(env: Env) -> None:
    owner, org_id, plans = await on_plan(env)
    await change(owner, org_id, {"planId": plans["teams-yearly"]})
    data = data_of(await change(owner, org_id, {"planId": plans["teams-plus"]}))
    assert data["plan"]["name"] == "teams-plus" and data["pendingPlan"] is None


async def test_change_to_the_current_plan_is_409(env: Env) -> None:
    owner, org_id, plans = await on_plan(env)
    response = await change(owner, org_id, {"planId": plans["teams-monthly"], "seats": 5})
    assert_refused(response, 409, "Already on this plan")
    assert await history(env, org_id) == [("subscribed", 3)]


async def test_change_with_seats_below_the_member_count_is_422_and_changes_nothing(
    env: Env,
) -> None:
    owner, org_id, plans = await on_plan(env, members=2, seats=3)
    response = await change(owner, org_id, {"planId": plans["teams-plus"], "seats": 2})
    assert_refused(response, 422, "seats must be at least the number of members (3)")
    row = await env.scalar(select(models.Subscription))
    assert row.plan_id == plans["teams-monthly"] and row.seats == 3


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({}, 400, id="no-plan-id"),
        pytest.param({"planId": "pln-01JAAAAAAAAAAAAAAAAAAAAAAA"}, 404, id="unknown-plan"),
        pytest.param({"planId": "x", "seats": 0}, 400, id="zero-seats"),
        pytest.param({"planId": "x", "seats": 2**63}, 400, id="seats-beyond-64-bits"),
        pytest.param({"planId": "x" * 10_000}, 400, id="huge-plan-id"),
    ],
)
async def test_change_refuses_bad_input(env: Env, body: dict[str, Any], status: int) -> None:
    owner, org_id, _ = await on_plan(env)
    response = await change(owner, org_id, body)
    assert response.status_code == status, response.text
    assert response.json()["success"] is False


async def test_change_to_an_individual_plan_is_422(env: Env) -> None:
    owner, org_id, plans = await on_plan(env)
    response = await change(owner, org_id, {"planId": plans["pro-monthly"]})
    assert_refused(response, 422, "Organizations subscribe to teams plans")


async def test_change_without_a_plan_is_404(env: Env) -> None:
    plans = await seed(env)
    owner = await env.user()
    org_id = await env.organization(owner)
    response = await change(owner, org_id, {"planId": plans["teams-yearly"]})
    assert_refused(response, 404, "No plan found for organization")


async def test_members_may_not_change_the_plan(env: Env) -> None:
    _owner, org_id, plans = await on_plan(env)
    member = await env.member(org_id)
    assert (await change(member, org_id, {"planId": plans["teams-plus"]})).status_code == 403
    resumed = await member.post(f"/organizations/{org_id}/plan/resume")
    assert resumed.status_code == 403


async def test_resume_undoes_a_pending_cancellation(env: Env) -> None:
    owner, org_id, plans = await on_plan(env)
    await owner.delete(f"/organizations/{org_id}/plan/{plans['teams-monthly']}")
    data = data_of(await owner.post(f"/organizations/{org_id}/plan/resume"))
    assert data["cancelAt"] is None and data["canceledAt"] is None and data["status"] == "active"
    assert (await owner.get(f"/organizations/{org_id}/plan")).json()["data"]["cancelAt"] is None


async def test_resume_with_nothing_pending_is_409(env: Env) -> None:
    owner, org_id, _ = await on_plan(env)
    response = await owner.post(f"/organizations/{org_id}/plan/resume")
    assert_refused(response, 409, "Nothing to resume: no cancellation or plan change is pending")


async def test_resume_undoes_a_pending_downgrade(env: Env) -> None:
    owner, org_id, plans = await on_plan(env)
    await change(owner, org_id, {"planId": plans["teams-yearly"]})
    data_of(await owner.post(f"/organizations/{org_id}/plan/resume"))
    row = await env.scalar(select(models.Subscription))
    assert row.pending_plan_id is None and row.plan_id == plans["teams-monthly"]


async def test_changing_the_plan_withdraws_a_pending_cancellation(env: Env) -> None:
    owner, org_id, plans = await on_plan(env)
    await owner.delete(f"/organizations/{org_id}/plan/{plans['teams-monthly']}")
    upgraded = data_of(await change(owner, org_id, {"planId": plans["teams-plus"]}))
    assert upgraded["cancelAt"] is None
    await owner.delete(f"/organizations/{org_id}/plan/{plans['teams-plus']}")
    downgraded = data_of(await change(owner, org_id, {"planId": plans["teams-monthly"]}))
    assert downgraded["cancelAt"] is None and downgraded["pendingPlan"]["name"] == "teams-monthly"


async def test_subscribing_again_works_once_a_cancellation_took_effect(env: Env) -> None:
    owner, org_id, plans = await on_plan(env)
    await owner.delete(f"/organizations/{org_id}/plan/{plans['teams-monthly']}")
    refused = await subscribe(owner, org_id, plans["teams-yearly"], 1)
    assert refused.status_code == 409  # not before the period ends
    await period_over(env)
    again = data_of(await subscribe(owner, org_id, plans["teams-yearly"], 1), 201)
    assert again["plan"]["name"] == "teams-yearly"
    statuses = [row.status for row in await env.all(select(models.Subscription))]
    assert sorted(statuses) == ["active", "canceled"]


async def test_a_cancellation_that_took_effect_cannot_be_resumed(env: Env) -> None:
    owner, org_id, plans = await on_plan(env)
    await owner.delete(f"/organizations/{org_id}/plan/{plans['teams-monthly']}")
    await period_over(env)
    response = await owner.post(f"/organizations/{org_id}/plan/resume")
    assert_refused(response, 404, "No plan found for organization")


async def test_graphql_change_plan_resume_and_history(env: Env) -> None:
    owner, org_id, plans = await on_plan(env, members=1, seats=3)
    down = await owner.gql_data(
        CHANGE_PLAN, {"input": {"organizationId": org_id, "planId": plans["teams-yearly"]}}
    )
    sub = down["changePlan"]["subscription"]
    assert down["changePlan"]["errors"] == []
    assert sub["plan"] == {"name": "teams-monthly"}
    assert sub["pendingPlan"] == {"name": "teams-yearly"}
    assert sub["seatsAvailable"] == 1
    resumed = await owner.gql_data(RESUME, {"input": {"organizationId": org_id}})
    assert resumed["resumeSubscription"]["subscription"]["pendingPlan"] is None
    up = await owner.gql_data(
        CHANGE_PLAN,
        {"input": {"organizationId": org_id, "planId": plans["teams-plus"], "seats": 4}},
    )
    assert up["changePlan"]["subscription"]["plan"] == {"name": "teams-plus"}
    assert up["changePlan"]["subscription"]["seatsAvailable"] == 2
    found = await owner.gql_data(HISTORY, {"id": org_id})
    entries = found["node"]["planHistory"]["nodes"]
    assert {(e["action"], e["plan"]["name"]) for e in entries} == {
        ("SUBSCRIBED", "teams-monthly"),
        ("SEATS_CHANGED", "teams-plus"),
        ("PLAN_CHANGED", "teams-plus"),
    }


async def test_graphql_plan_change_errors_are_typed(env: Env) -> None:
    owner, org_id, plans = await on_plan(env)
    same = await owner.gql_data(
        CHANGE_PLAN, {"input": {"organizationId": org_id, "planId": plans["teams-monthly"]}}
    )
    assert same["changePlan"] == {
        "errors": [{"code": "CONFLICT", "message": "Already on this plan", "field": None}],
        "subscription": None,
    }
    nothing = await owner.gql_data(RESUME, {"input": {"organizationId": org_id}})
    assert nothing["resumeSubscription"]["errors"][0]["code"] == "CONFLICT"


async def test_graphql_personal_plan_change(env: Env) -> None:
    plans = await seed(env)
    alice = await env.user()
    create = mutation("subscribeToPlan", "subscription { id }")
    await alice.gql_data(create, {"input": {"planId": plans["pro-yearly"], "seats": 1}})
    up = await alice.gql_data(CHANGE_PLAN, {"input": {"planId": plans["pro-monthly"]}})
    assert up["changePlan"]["subscription"]["plan"] == {"name": "pro-monthly"}
    assert up["changePlan"]["subscription"]["seatsAvailable"] is None
