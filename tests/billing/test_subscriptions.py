"""Subscriptions with seats: REST and GraphQL on the sandbox, Stripe events, and the stripe
implementation against a real localstripe server."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.billing.stripe_subscriptions import (
    StripeSubscriptions,
    apply_subscription_event,
    state_from_stripe,
)
from gateway.billing.subscriptions import add_months
from gateway.db import models
from tests.billing.helpers import (
    PLAN_KEYS,
    STRIPE_KEY,
    history,
    seed,
    stripe_client,
    stripe_team,
    subscribe,
    subscribed,
    team,
)
from tests.conftest import Client, Env
from tests.documents import mutation
from tests.envelopes import assert_refused, data_of

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
SUB_ID = re.compile(r"^sub-[0-9A-HJKMNP-TV-Z]{26}$")
SUBSCRIPTION_KEYS = {
    "subscriptionId",
    "organizationId",
    "plan",
    "seats",
    "status",
    "currentPeriodStart",
    "currentPeriodEnd",
    "cancelAt",
    "canceledAt",
    "planHistoryId",
}
# a user's own plan: a subscription without organization, seats and status, with the user
USER_PLAN_KEYS = (SUBSCRIPTION_KEYS - {"organizationId", "seats", "status"}) | {"userId"}
UNKNOWN_PLAN = "pln-01JAAAAAAAAAAAAAAAAAAAAAAA"


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def subscription_count(env: Env) -> int:
    return int(await env.scalar(select(func.count()).select_from(models.Subscription)))


# --- POST /organizations/{orgId}/plan --------------------------------------------------------


async def test_subscribe_returns_201_subscription_with_contract_shape(env: Env) -> None:
    owner, org_id, plans = await team(env, members=1)
    before = datetime.now(UTC)
    response = await subscribe(owner, org_id, plans["teams-monthly"], 2)
    data = data_of(response, 201)
    assert set(data) == SUBSCRIPTION_KEYS | {"clientSecret"}
    assert SUB_ID.match(data["subscriptionId"])
    assert data["organizationId"] == org_id
    assert data["plan"]["id"] == plans["teams-monthly"]
    assert data["plan"]["features"]["included"]
    assert data["seats"] == 2
    assert data["status"] == "active"
    assert data["cancelAt"] is None and data["canceledAt"] is None
    assert data["clientSecret"] is None
    assert TS.match(data["currentPeriodStart"]) and TS.match(data["currentPeriodEnd"])
    start = parse(data["currentPeriodStart"])
    assert before <= start <= datetime.now(UTC)
    assert parse(data["currentPeriodEnd"]) == add_months(start, 1)
    entry = await env.all(select(models.PlanHistory))
    assert [(e.action, e.seats, e.id) for e in entry] == [("subscribed", 2, data["planHistoryId"])]


async def test_subscribe_to_yearly_plan_runs_a_year(env: Env) -> None:
    owner, org_id, plans = await team(env)
    response = await subscribe(owner, org_id, plans["teams-yearly"], 1)
    data = response.json()["data"]
    start = parse(data["currentPeriodStart"])
    assert parse(data["currentPeriodEnd"]) == start.replace(year=start.year + 1)


async def test_subscribe_twice_is_409_and_writes_nothing(env: Env) -> None:
    owner, org_id, plans = await subscribed(env)
    response = await subscribe(owner, org_id, plans["teams-yearly"], 5)
    assert_refused(response, 409, "The organization already has a plan: change its seats instead")
    assert await subscription_count(env) == 1
    assert await history(env, org_id) == [("subscribed", 3)]


async def test_subscribe_with_fewer_seats_than_members_is_422(env: Env) -> None:
    owner, org_id, plans = await team(env, members=2)
    response = await subscribe(owner, org_id, plans["teams-monthly"], 2)
    assert_refused(response, 422, "seats must be at least the number of members (3)")
    assert await subscription_count(env) == 0


@pytest.mark.parametrize("seats", [0, -1, "3", 1.5, None, 10_001])
async def test_subscribe_with_invalid_seats_is_400(env: Env, seats: Any) -> None:
    owner, org_id, plans = await team(env)
    response = await subscribe(owner, org_id, plans["teams-monthly"], seats)
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert "seats" in response.json()["error"]
    assert await subscription_count(env) == 0


async def test_subscribe_without_plan_id_is_400(env: Env) -> None:
    owner, org_id, _ = await team(env)
    response = await owner.post(f"/organizations/{org_id}/plan", json={"seats": 1})
    assert response.status_code == 400
    assert "planId" in response.json()["error"]


async def test_subscribe_to_unknown_plan_is_404(env: Env) -> None:
    owner, org_id, _ = await team(env)
    response = await subscribe(owner, org_id, UNKNOWN_PLAN, 1)
    assert_refused(response, 404, "Plan not found")


async def test_organization_cannot_subscribe_to_individual_plan(env: Env) -> None:
    owner, org_id, plans = await team(env)
    response = await subscribe(owner, org_id, plans["pro-monthly"], 1)
    assert response.status_code == 422
    assert response.json()["error"] == "Organizations subscribe to teams plans"


async def test_subscribe_to_retired_plan_is_422(env: Env) -> None:
    owner, org_id, plans = await team(env)
    async with env.sessions() as session:
        plan = await session.get(models.Plan, plans["teams-monthly"])
        assert plan is not None
        plan.active = False
        await session.commit()
    response = await subscribe(owner, org_id, plans["teams-monthly"], 1)
    assert response.status_code == 422
    assert response.json()["error"] == "This plan is no longer offered"


async def test_members_may_not_subscribe(env: Env) -> None:
    _owner, org_id, plans = await team(env)
    member = await env.member(org_id)
    response = await subscribe(member, org_id, plans["teams-monthly"], 2)
    assert_refused(response, 403, "Only organization owners and admins can do this")
    assert await subscription_count(env) == 0


async def test_admins_may_subscribe(env: Env) -> None:
    _owner, org_id, plans = await team(env)
    admin = await env.member(org_id, "admin")
    response = await subscribe(admin, org_id, plans["teams-monthly"], 2)
    assert response.status_code == 201


async def test_strangers_get_404_on_every_plan_route(env: Env) -> None:
    _owner, org_id, plans = await subscribed(env)
    stranger = await env.user()
    plan_id = plans["teams-monthly"]
    base = f"/organizations/{org_id}/plan"
    responses = [
        await stranger.get(base),
        await stranger.get(f"{base}/history"),
        await stranger.get(f"{base}/{plan_id}"),
        await stranger.post(base, json={"planId": plan_id, "seats": 5}),
        await stranger.put(f"{base}/seats", json={"seats": 5}),
        await stranger.delete(f"{base}/{plan_id}"),
    ]
    for response in responses:
        assert_refused(response, 404, "Organization not found")


async def test_plan_routes_need_authentication(env: Env) -> None:
    _, org_id, _ = await subscribed(env)
    for response in (
        await env.anonymous.get(f"/organizations/{org_id}/plan"),
        await env.anonymous.get("/users/me/plan"),
        await env.anonymous.put(f"/organizations/{org_id}/plan/seats", json={"seats": 4}),
    ):
        assert response.status_code == 401
        assert response.json()["success"] is False


async def test_subscribe_replay_with_idempotency_key_returns_first_response(env: Env) -> None:
    owner, org_id, plans = await team(env)
    body = {"planId": plans["teams-monthly"], "seats": 2}
    headers = {"Idempotency-Key": "subscribe-1"}
    first = await owner.post(f"/organizations/{org_id}/plan", json=body, headers=headers)
    again = await owner.post(f"/organizations/{org_id}/plan", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert await subscription_count(env) == 1
    other = await owner.post(
        f"/organizations/{org_id}/plan", json={**body, "seats": 3}, headers=headers
    )
    assert other.status_code == 409


# --- GET /organizations/{orgId}/plan -------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("GET", "/plan", None, id="read_the_plan"),
        pytest.param("PUT", "/plan/seats", {"seats": 3}, id="change_seats"),
        pytest.param("DELETE", "/plan/{teams-monthly}", None, id="cancel"),
    ],
)
async def test_organization_plan_routes_are_404_without_subscription(
    env: Env, method: str, path: str, body: dict[str, int] | None
) -> None:
    owner, org_id, plans = await team(env)
    path = path.replace("{teams-monthly}", plans["teams-monthly"])
    response = await owner.request(method, f"/organizations/{org_id}{path}", json=body)
    assert_refused(response, 404, "No plan found for organization")


async def test_members_may_read_the_organization_plan(env: Env) -> None:
    owner, org_id, _plans = await subscribed(env)
    member = await env.member(org_id)
    created = (await owner.get(f"/organizations/{org_id}/plan")).json()["data"]
    response = await member.get(f"/organizations/{org_id}/plan")
    data = data_of(response)
    assert set(data) == SUBSCRIPTION_KEYS
    assert data == created
    assert data["plan"]["name"] == "teams-monthly" and data["seats"] == 3


# --- PUT /organizations/{orgId}/plan/seats -------------------------------------------------


async def test_change_seats_updates_subscription_and_history(env: Env) -> None:
    owner, org_id, _ = await subscribed(env, members=1, seats=3)
    first = (await owner.get(f"/organizations/{org_id}/plan")).json()["data"]
    response = await owner.put(f"/organizations/{org_id}/plan/seats", json={"seats": 7})
    data = data_of(response)
    assert set(data) == SUBSCRIPTION_KEYS
    assert data["seats"] == 7
    assert data["subscriptionId"] == first["subscriptionId"]
    assert data["currentPeriodEnd"] == first["currentPeriodEnd"]
    assert data["planHistoryId"] != first["planHistoryId"]
    assert await history(env, org_id) == [("subscribed", 3), ("seats_changed", 7)]
    down = await owner.put(f"/organizations/{org_id}/plan/seats", json={"seats": 2})
    assert down.json()["data"]["seats"] == 2


async def test_change_seats_below_member_count_is_422(env: Env) -> None:
    owner, org_id, _ = await subscribed(env, members=2, seats=4)
    response = await owner.put(f"/organizations/{org_id}/plan/seats", json={"seats": 2})
    assert_refused(response, 422, "seats must be at least the number of members (3)")
    current = (await owner.get(f"/organizations/{org_id}/plan")).json()["data"]
    assert current["seats"] == 4
    assert await history(env, org_id) == [("subscribed", 4)]


async def test_change_seats_to_same_count_records_nothing(env: Env) -> None:
    owner, org_id, _ = await subscribed(env, seats=3)
    response = await owner.put(f"/organizations/{org_id}/plan/seats", json={"seats": 3})
    assert response.status_code == 200
    assert await history(env, org_id) == [("subscribed", 3)]


async def test_change_seats_invalid_is_400(env: Env) -> None:
    owner, org_id, _ = await subscribed(env)
    for body in ({"seats": 0}, {"seats": "5"}, {}):
        response = await owner.put(f"/organizations/{org_id}/plan/seats", json=body)
        assert response.status_code == 400, body
        assert "seats" in response.json()["error"]


async def test_members_may_not_change_seats(env: Env) -> None:
    _owner, org_id, _ = await subscribed(env)
    member = await env.member(org_id)
    response = await member.put(f"/organizations/{org_id}/plan/seats", json={"seats": 9})
    assert response.status_code == 403


# --- DELETE /organizations/{orgId}/plan/{planId} -------------------------------------------


async def test_cancel_sets_cancel_at_period_end(env: Env) -> None:
    owner, org_id, plans = await subscribed(env)
    response = await owner.delete(f"/organizations/{org_id}/plan/{plans['teams-monthly']}")
    data = data_of(response)
    assert set(data) == SUBSCRIPTION_KEYS
    assert data["cancelAt"] == data["currentPeriodEnd"]
    assert TS.match(data["canceledAt"])
    assert data["status"] == "active"  # it runs until the period ends
    assert await history(env, org_id) == [("subscribed", 3), ("canceled", 3)]


async def test_cancel_again_changes_nothing(env: Env) -> None:
    owner, org_id, plans = await subscribed(env)
    url = f"/organizations/{org_id}/plan/{plans['teams-monthly']}"
    first = (await owner.delete(url)).json()["data"]
    again = await owner.delete(url)
    assert again.status_code == 200
    assert again.json()["data"] == first
    assert await history(env, org_id) == [("subscribed", 3), ("canceled", 3)]


async def test_cancel_other_plan_is_404(env: Env) -> None:
    owner, org_id, plans = await subscribed(env)
    response = await owner.delete(f"/organizations/{org_id}/plan/{plans['teams-yearly']}")
    assert response.status_code == 404
    assert response.json()["error"] == "The organization is not subscribed to this plan"


async def test_members_may_not_cancel(env: Env) -> None:
    _owner, org_id, plans = await subscribed(env)
    member = await env.member(org_id)
    response = await member.delete(f"/organizations/{org_id}/plan/{plans['teams-monthly']}")
    assert response.status_code == 403
    assert await history(env, org_id) == [("subscribed", 3)]


async def test_pending_cancellation_still_blocks_a_second_subscription(env: Env) -> None:
    owner, org_id, plans = await subscribed(env)
    await owner.delete(f"/organizations/{org_id}/plan/{plans['teams-monthly']}")
    response = await subscribe(owner, org_id, plans["teams-yearly"], 1)
    assert response.status_code == 409


# --- history and details -------------------------------------------------------------------


async def test_plan_history_lists_newest_first_with_shape(env: Env) -> None:
    owner, org_id, plans = await subscribed(env, seats=2)
    await owner.put(f"/organizations/{org_id}/plan/seats", json={"seats": 4})
    await owner.delete(f"/organizations/{org_id}/plan/{plans['teams-monthly']}")
    member = await env.member(org_id)
    response = await member.get(f"/organizations/{org_id}/plan/history")
    data = data_of(response)
    assert set(data) == {"items", "nextCursor"}
    assert data["nextCursor"] is None
    items = data["items"]
    assert [(i["action"], i["seats"]) for i in items] == [
        ("canceled", 4),
        ("seats_changed", 4),
        ("subscribed", 2),
    ]
    assert set(items[0]) == {"id", "planId", "plan", "seats", "action", "createdAt"}
    assert items[0]["planId"] == plans["teams-monthly"] == items[0]["plan"]["id"]
    assert TS.match(items[0]["createdAt"])
    current = (await owner.get(f"/organizations/{org_id}/plan")).json()["data"]
    assert current["planHistoryId"] == items[0]["id"]


async def test_plan_history_pages_with_cursor(env: Env) -> None:
    owner, org_id, _ = await subscribed(env, seats=2)
    await owner.put(f"/organizations/{org_id}/plan/seats", json={"seats": 5})
    first = (await owner.get(f"/organizations/{org_id}/plan/history?limit=1")).json()["data"]
    assert len(first["items"]) == 1 and first["nextCursor"]
    second = (
        await owner.get(
            f"/organizations/{org_id}/plan/history?limit=1&cursor={first['nextCursor']}"
        )
    ).json()["data"]
    assert [i["action"] for i in first["items"] + second["items"]] == [
        "seats_changed",
        "subscribed",
    ]
    assert second["nextCursor"] is None


async def test_plan_history_is_empty_without_subscription(env: Env) -> None:
    owner, org_id, _ = await team(env)
    response = await owner.get(f"/organizations/{org_id}/plan/history")
    assert response.json() == {"success": True, "data": {"items": [], "nextCursor": None}}


async def test_plan_details_include_the_subscription_to_that_plan(env: Env) -> None:
    owner, org_id, plans = await subscribed(env)
    response = await owner.get(f"/organizations/{org_id}/plan/{plans['teams-monthly']}")
    data = data_of(response)
    assert set(data) == PLAN_KEYS | {"subscription"}
    assert data["id"] == plans["teams-monthly"]
    assert set(data["subscription"]) == SUBSCRIPTION_KEYS
    assert data["subscription"]["seats"] == 3
    other = (await owner.get(f"/organizations/{org_id}/plan/{plans['teams-yearly']}")).json()
    assert other["data"]["name"] == "teams-yearly"
    assert other["data"]["subscription"] is None


async def test_plan_details_of_unknown_plan_is_404(env: Env) -> None:
    owner, org_id, _ = await team(env)
    response = await owner.get(f"/organizations/{org_id}/plan/{UNKNOWN_PLAN}")
    assert_refused(response, 404, "Plan not found")


# --- GET /users/me/plan and personal subscriptions -----------------------------------------

SUBSCRIBE = mutation(
    "subscribeToPlan",
    """clientSecret
    subscription {
      id seats status currentPeriodStart currentPeriodEnd cancelAt canceledAt
      plan { name type interval }
      organization { id }
    }""",
)
CHANGE_SEATS = mutation("changeSeats", "subscription { id seats }")
CANCEL = mutation(
    "cancelSubscription", "subscription { id status cancelAt canceledAt currentPeriodEnd }"
)


async def test_user_plan_is_404_with_exact_message(env: Env) -> None:
    alice = await env.user()
    response = await alice.get("/users/me/plan")
    assert_refused(response, 404, "No plan found for user")


async def test_user_plan_shows_the_individual_subscription(env: Env) -> None:
    plans = await seed(env)
    alice = await env.user()
    data = await alice.gql_data(SUBSCRIBE, {"input": {"planId": plans["pro-monthly"]}})
    payload = data["subscribeToPlan"]
    assert payload["errors"] == []
    assert payload["subscription"]["organization"] is None
    assert payload["subscription"]["plan"] == {
        "name": "pro-monthly",
        "type": "INDIVIDUAL",
        "interval": "MONTHLY",
    }
    response = await alice.get("/users/me/plan")
    plan = data_of(response)
    assert set(plan) == USER_PLAN_KEYS
    assert plan["subscriptionId"] == payload["subscription"]["id"]
    assert plan["userId"] == alice.user_id
    assert plan["plan"]["name"] == "pro-monthly"
    assert plan["planHistoryId"].startswith("plh-")
    assert plan["currentPeriodStart"] == payload["subscription"]["currentPeriodStart"]
    # an organization's plan is not the user's individual plan
    org_id = await env.organization(alice)
    await subscribe(alice, org_id, plans["teams-monthly"], 1)
    assert (await alice.get("/users/me/plan")).json()["data"]["plan"]["name"] == "pro-monthly"


async def test_user_plan_ignores_organization_plans(env: Env) -> None:
    owner, _, _ = await subscribed(env)
    response = await owner.get("/users/me/plan")
    assert response.status_code == 404


async def test_personal_subscription_needs_an_individual_plan_and_one_seat(env: Env) -> None:
    plans = await seed(env)
    alice = await env.user()
    teams = await alice.gql_data(SUBSCRIBE, {"input": {"planId": plans["teams-monthly"]}})
    assert teams["subscribeToPlan"]["errors"] == [
        {
            "code": "UNPROCESSABLE",
            "message": "Personal accounts subscribe to individual plans",
            "field": "planId",
        }
    ]
    seats = await alice.gql_data(SUBSCRIBE, {"input": {"planId": plans["pro-monthly"], "seats": 2}})
    assert seats["subscribeToPlan"]["errors"][0]["field"] == "seats"
    assert await subscription_count(env) == 0


async def test_personal_subscription_can_be_canceled(env: Env) -> None:
    plans = await seed(env)
    alice = await env.user()
    await alice.gql_data(SUBSCRIBE, {"input": {"planId": plans["pro-yearly"]}})
    data = await alice.gql_data(CANCEL, {"input": {"planId": plans["pro-yearly"]}})
    sub = data["cancelSubscription"]["subscription"]
    assert data["cancelSubscription"]["errors"] == []
    assert sub["cancelAt"] == sub["currentPeriodEnd"]
    plan = (await alice.get("/users/me/plan")).json()["data"]
    assert plan["cancelAt"] == sub["cancelAt"]


# --- GraphQL -------------------------------------------------------------------------------


async def test_graphql_subscribe_change_seats_cancel(env: Env) -> None:
    owner, org_id, plans = await team(env, members=1)
    created = await owner.gql_data(
        SUBSCRIBE,
        {"input": {"organizationId": org_id, "planId": plans["teams-monthly"], "seats": 2}},
    )
    payload = created["subscribeToPlan"]
    assert payload["errors"] == [] and payload["clientSecret"] is None
    sub = payload["subscription"]
    assert sub["seats"] == 2 and sub["status"] == "ACTIVE"
    assert sub["organization"] == {"id": org_id}
    changed = await owner.gql_data(CHANGE_SEATS, {"input": {"organizationId": org_id, "seats": 6}})
    assert changed["changeSeats"] == {"errors": [], "subscription": {"id": sub["id"], "seats": 6}}
    canceled = await owner.gql_data(
        CANCEL, {"input": {"organizationId": org_id, "planId": plans["teams-monthly"]}}
    )
    result = canceled["cancelSubscription"]["subscription"]
    assert result["cancelAt"] == result["currentPeriodEnd"] and result["status"] == "ACTIVE"
    assert await history(env, org_id) == [
        ("subscribed", 2),
        ("seats_changed", 6),
        ("canceled", 6),
    ]


async def test_graphql_mutation_errors_are_typed(env: Env) -> None:
    owner, org_id, plans = await subscribed(env, members=1)
    again = await owner.gql_data(
        SUBSCRIBE,
        {"input": {"organizationId": org_id, "planId": plans["teams-monthly"], "seats": 4}},
    )
    assert again["subscribeToPlan"] == {
        "errors": [
            {
                "code": "CONFLICT",
                "message": "The organization already has a plan: change its seats instead",
                "field": None,
            }
        ],
        "clientSecret": None,
        "subscription": None,
    }
    too_few = await owner.gql_data(CHANGE_SEATS, {"input": {"organizationId": org_id, "seats": 1}})
    assert too_few["changeSeats"]["errors"] == [
        {
            "code": "UNPROCESSABLE",
            "message": "seats must be at least the number of members (2)",
            "field": "seats",
        }
    ]
    invalid = await owner.gql_data(CHANGE_SEATS, {"input": {"organizationId": org_id, "seats": 0}})
    assert invalid["changeSeats"]["errors"][0]["code"] == "VALIDATION_FAILED"
    member = await env.member(org_id)
    forbidden = await member.gql_data(
        CANCEL, {"input": {"organizationId": org_id, "planId": plans["teams-monthly"]}}
    )
    assert forbidden["cancelSubscription"]["errors"][0]["code"] == "FORBIDDEN"
    stranger = await env.user()
    hidden = await stranger.gql_data(
        CHANGE_SEATS, {"input": {"organizationId": org_id, "seats": 9}}
    )
    assert hidden["changeSeats"]["errors"][0]["code"] == "NOT_FOUND"
    assert await history(env, org_id) == [("subscribed", 3)]


ORG_PLAN = """
query($id: ID!) {
  organization(id: $id) {
    subscription { id seats status plan { name } organization { id } }
    planHistory(first: 10) { nodes { action seats plan { name } subscriptionId } }
  }
}"""


async def test_graphql_organization_subscription_and_history(env: Env) -> None:
    owner, org_id, _plans = await subscribed(env, seats=2)
    await owner.put(f"/organizations/{org_id}/plan/seats", json={"seats": 3})
    member = await env.member(org_id)
    data = await member.gql_data(ORG_PLAN, {"id": org_id})
    sub = data["organization"]["subscription"]
    assert sub["seats"] == 3 and sub["status"] == "ACTIVE"
    assert sub["plan"] == {"name": "teams-monthly"} and sub["organization"] == {"id": org_id}
    assert data["organization"]["planHistory"]["nodes"] == [
        {
            "action": "SEATS_CHANGED",
            "seats": 3,
            "plan": {"name": "teams-monthly"},
            "subscriptionId": sub["id"],
        },
        {
            "action": "SUBSCRIBED",
            "seats": 2,
            "plan": {"name": "teams-monthly"},
            "subscriptionId": sub["id"],
        },
    ]


async def test_graphql_organization_without_plan_has_null_subscription(env: Env) -> None:
    owner, org_id, _ = await team(env)
    data = await owner.gql_data(ORG_PLAN, {"id": org_id})
    assert data["organization"]["subscription"] is None
    assert data["organization"]["planHistory"]["nodes"] == []


async def test_graphql_user_subscription_is_only_visible_to_the_user(env: Env) -> None:
    plans = await seed(env)
    alice = await env.user()
    bob = await env.user()
    org_id = await env.organization(alice)
    await env.add_member(org_id, bob)  # bob may see alice, but not her subscription
    await alice.gql_data(SUBSCRIBE, {"input": {"planId": plans["pro-monthly"]}})
    query = "query($id: ID!) { viewer { subscription { seats } } user(id: $id) { subscription { seats } } }"
    mine = await alice.gql_data(query, {"id": alice.user_id})
    assert mine["viewer"]["subscription"] == {"seats": 1}
    assert mine["user"]["subscription"] == {"seats": 1}
    theirs = await bob.gql_data(query, {"id": alice.user_id})
    assert theirs["viewer"]["subscription"] is None
    assert theirs["user"] == {"subscription": None}


async def test_graphql_subscription_node_is_visible_to_members_only(env: Env) -> None:
    owner, org_id, _ = await subscribed(env)
    sub_id = (await owner.get(f"/organizations/{org_id}/plan")).json()["data"]["subscriptionId"]
    query = "query($id: ID!) { node(id: $id) { id ... on Subscription { seats } } }"
    member = await env.member(org_id)
    assert (await member.gql_data(query, {"id": sub_id}))["node"] == {"id": sub_id, "seats": 3}
    stranger = await env.user()
    assert (await stranger.gql_data(query, {"id": sub_id}))["node"] is None


async def test_organization_subscriptions_load_in_constant_queries(env: Env) -> None:
    plans = await seed(env)
    owner = await env.user()
    query = """query { viewer { organizations { organization {
        subscription { seats plan { name } } } } } }"""

    async def statements() -> int:
        with env.counter.counting() as seen:
            data = await owner.gql_data(query)
        assert all(
            m["organization"]["subscription"]["plan"]["name"] == "teams-monthly"
            for m in data["viewer"]["organizations"]
        )
        return len(seen)

    async def add_org() -> None:
        org_id = await env.organization(owner)
        response = await subscribe(owner, org_id, plans["teams-monthly"], 1)
        assert response.status_code == 201

    await add_org()
    one = await statements()
    for _ in range(3):
        await add_org()
    assert await statements() == one


# --- Stripe subscription events (apply_subscription_event) ---------------------------------


def stripe_subscription(
    provider_id: str,
    *,
    status: str = "active",
    quantity: int = 3,
    start: datetime,
    plan: str = "gw_teams-monthly",
    cancel_at_period_end: bool = False,
    canceled_at: int | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Stripe subscription object as sent in `customer.subscription.*` events
    (API 2025+ shape: the period lives on the item)."""
    end = add_months(start, 1)
    return {
        "id": provider_id,
        "object": "subscription",
        "status": status,
        "cancel_at": None,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": canceled_at,
        "ended_at": canceled_at if status == "canceled" else None,
        "metadata": metadata or {},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_test",
                    "object": "subscription_item",
                    "quantity": quantity,
                    "current_period_start": int(start.timestamp()),
                    "current_period_end": int(end.timestamp()),
                    "price": {"id": plan, "object": "price"},
                    "plan": {"id": plan, "object": "plan"},
                }
            ],
        },
    }


async def provider_linked(env: Env) -> tuple[Client, str, str, datetime]:
    """A subscribed organization whose row carries a Stripe id: (owner, org, sub id, start)."""
    owner, org_id, plans = await subscribed(env)
    async with env.sessions() as session:
        sub = (await session.execute(select(models.Subscription))).scalar_one()
        sub.provider_subscription_id = "sub_stripe_1"
        start = sub.current_period_start
        plan = await session.get(models.Plan, plans["teams-monthly"])
        assert plan is not None and start is not None
        plan.provider_price_id = "gw_teams-monthly"
        await session.commit()
        return owner, org_id, sub.id, start


async def apply(env: Env, obj: dict[str, Any]) -> models.Subscription | None:
    async with env.sessions() as session:
        found = await apply_subscription_event(session, obj)
        await session.commit()
        return found


async def test_event_quantity_change_updates_seats_once(env: Env) -> None:
    owner, org_id, _, start = await provider_linked(env)
    event = stripe_subscription("sub_stripe_1", quantity=8, start=start)
    assert (await apply(env, event)) is not None
    await apply(env, event)  # replayed
    assert await history(env, org_id) == [("subscribed", 3), ("seats_changed", 8)]
    data = (await owner.get(f"/organizations/{org_id}/plan")).json()["data"]
    assert data["seats"] == 8


async def test_event_renewal_moves_the_period_and_stale_events_change_nothing(env: Env) -> None:
    owner, org_id, _, start = await provider_linked(env)
    later = add_months(start, 1)
    await apply(env, stripe_subscription("sub_stripe_1", start=later))
    data = (await owner.get(f"/organizations/{org_id}/plan")).json()["data"]
    assert parse(data["currentPeriodStart"]) == later.replace(microsecond=0)
    await apply(env, stripe_subscription("sub_stripe_1", quantity=9, start=start))  # stale
    assert (await owner.get(f"/organizations/{org_id}/plan")).json()["data"]["seats"] == 3
    assert await history(env, org_id) == [("subscribed", 3), ("renewed", 3)]


async def test_event_status_maps_past_due_and_back(env: Env) -> None:
    owner, org_id, _, start = await provider_linked(env)
    await apply(env, stripe_subscription("sub_stripe_1", status="past_due", start=start))
    assert (await owner.get(f"/organizations/{org_id}/plan")).json()["data"]["status"] == "past_due"
    await apply(env, stripe_subscription("sub_stripe_1", status="unpaid", start=start))
    assert (await owner.get(f"/organizations/{org_id}/plan")).json()["data"]["status"] == "past_due"
    await apply(env, stripe_subscription("sub_stripe_1", status="active", start=start))
    assert (await owner.get(f"/organizations/{org_id}/plan")).json()["data"]["status"] == "active"
    # an `incomplete` view never undoes a started subscription
    await apply(env, stripe_subscription("sub_stripe_1", status="incomplete", start=start))
    assert (await owner.get(f"/organizations/{org_id}/plan")).json()["data"]["status"] == "active"


async def test_event_cancel_at_period_end_then_deleted_records_one_cancel(env: Env) -> None:
    owner, org_id, sub_id, start = await provider_linked(env)
    requested = int(datetime.now(UTC).timestamp())
    await apply(
        env,
        stripe_subscription(
            "sub_stripe_1", start=start, cancel_at_period_end=True, canceled_at=requested
        ),
    )
    data = (await owner.get(f"/organizations/{org_id}/plan")).json()["data"]
    assert data["cancelAt"] == data["currentPeriodEnd"]
    await apply(
        env,
        stripe_subscription("sub_stripe_1", status="canceled", start=start, canceled_at=requested),
    )
    response = await owner.get(f"/organizations/{org_id}/plan")
    assert response.status_code == 404
    row = await env.scalar(select(models.Subscription).where(models.Subscription.id == sub_id))
    assert row.status == "canceled" and row.canceled_at is not None
    assert await history(env, org_id) == [("subscribed", 3), ("canceled", 3)]
    # a late `active` event does not bring it back
    await apply(env, stripe_subscription("sub_stripe_1", start=start))
    assert (await owner.get(f"/organizations/{org_id}/plan")).status_code == 404
    # and the organization may subscribe again
    again = await owner.post(
        f"/organizations/{org_id}/plan",
        json={"planId": data["plan"]["id"], "seats": 1},
    )
    assert again.status_code == 201


async def test_event_immediate_deletion_records_cancel(env: Env) -> None:
    _owner, org_id, _, start = await provider_linked(env)
    await apply(env, stripe_subscription("sub_stripe_1", status="canceled", start=start))
    assert await history(env, org_id) == [("subscribed", 3), ("canceled", 3)]


async def test_event_finds_row_by_metadata_before_its_stripe_id_is_stored(env: Env) -> None:
    _owner, _org_id, _ = await subscribed(env)
    async with env.sessions() as session:
        sub = (await session.execute(select(models.Subscription))).scalar_one()
        sub_id, start = sub.id, sub.current_period_start
    assert start is not None
    event = stripe_subscription(
        "sub_stripe_new", quantity=4, start=start, metadata={"subscription_id": sub_id}
    )
    found = await apply(env, event)
    assert found is not None and found.id == sub_id
    row = await env.scalar(select(models.Subscription).where(models.Subscription.id == sub_id))
    assert row.provider_subscription_id == "sub_stripe_new" and row.seats == 4


async def test_event_for_unknown_subscription_is_ignored(env: Env) -> None:
    await seed(env)
    event = stripe_subscription(
        "sub_nobody", start=datetime.now(UTC), metadata={"subscription_id": "sub-unknown"}
    )
    assert await apply(env, event) is None
    assert await subscription_count(env) == 0


async def test_event_plan_change_follows_the_provider_plan(env: Env) -> None:
    owner, org_id, _, start = await provider_linked(env)
    plans = {p["name"]: p["id"] for p in (await owner.get("/plans")).json()["data"]}
    async with env.sessions() as session:
        yearly = await session.get(models.Plan, plans["teams-yearly"])
        assert yearly is not None
        yearly.provider_price_id = "gw_teams-yearly"
        await session.commit()
    await apply(env, stripe_subscription("sub_stripe_1", start=start, plan="gw_teams-yearly"))
    data = (await owner.get(f"/organizations/{org_id}/plan")).json()["data"]
    assert data["plan"]["name"] == "teams-yearly"


def test_state_from_legacy_stripe_shape_reads_root_period_and_quantity() -> None:
    state = state_from_stripe(
        {
            "id": "sub_x",
            "status": "trialing",
            "quantity": 4,
            "current_period_start": 1_800_000_000,
            "current_period_end": 1_802_592_000,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "plan": {"id": "plan_x"},
            "items": {"data": []},
        }
    )
    assert state.status == "active" and state.seats == 4
    assert state.current_period_start == datetime.fromtimestamp(1_800_000_000, UTC)
    assert state.provider_plan_id == "plan_x"


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2024, 2, 29, tzinfo=UTC), 12) == datetime(2025, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2026, 11, 15, tzinfo=UTC), 3) == datetime(2027, 2, 15, tzinfo=UTC)


# --- the stripe implementation against localstripe -----------------------------------------


@pytest.fixture
def stripe_at_localstripe(monkeypatch: pytest.MonkeyPatch, localstripe: str) -> str:
    # Read by Settings for the env fixture (the server's URL is only known at run time).
    monkeypatch.setenv("GATEWAY_STRIPE_API_BASE", localstripe)
    return localstripe


def on_stripe(test: Any) -> Any:
    """Run `test` with the stripe provider pointed at the tests' localstripe server."""
    test = pytest.mark.usefixtures("stripe_at_localstripe")(test)
    return pytest.mark.settings(payments_provider="stripe", stripe_api_key=STRIPE_KEY)(test)


@on_stripe
async def test_stripe_subscription_has_quantity_seats_and_stripe_periods(
    env: Env, localstripe: str
) -> None:
    owner, org_id, plan_id, customer_id = await stripe_team(env, localstripe)
    response = await subscribe(owner, org_id, plan_id, 4)
    data = data_of(response, 201)
    assert data["status"] == "active" and data["seats"] == 4
    row = await env.scalar(select(models.Subscription))
    assert row.provider_subscription_id.startswith("sub_")
    remote = (
        await stripe_client(localstripe).v1.subscriptions.retrieve_async(
            row.provider_subscription_id
        )
    ).to_dict()
    assert remote["customer"] == customer_id
    assert remote["items"]["data"][0]["quantity"] == 4
    assert remote["items"]["data"][0]["plan"]["id"] == "gw_teams-monthly"
    assert remote["metadata"]["subscription_id"] == data["subscriptionId"]
    assert int(parse(data["currentPeriodStart"]).timestamp()) == remote["current_period_start"]
    assert int(parse(data["currentPeriodEnd"]).timestamp()) == remote["current_period_end"]


@on_stripe
async def test_stripe_seat_change_and_cancel_reach_stripe(env: Env, localstripe: str) -> None:
    owner, org_id, plan_id, _ = await stripe_team(env, localstripe)
    await subscribe(owner, org_id, plan_id, 2)
    changed = await owner.put(f"/organizations/{org_id}/plan/seats", json={"seats": 5})
    assert changed.status_code == 200, changed.text
    assert changed.json()["data"]["seats"] == 5
    row = await env.scalar(select(models.Subscription))
    client = stripe_client(localstripe)
    remote = (await client.v1.subscriptions.retrieve_async(row.provider_subscription_id)).to_dict()
    assert remote["items"]["data"][0]["quantity"] == 5
    canceled = await owner.delete(f"/organizations/{org_id}/plan/{plan_id}")
    data = data_of(canceled)
    assert data["cancelAt"] == data["currentPeriodEnd"] and data["canceledAt"] is not None
    remote = (await client.v1.subscriptions.retrieve_async(row.provider_subscription_id)).to_dict()
    assert remote["cancel_at_period_end"] is True
    assert await history(env, org_id) == [("subscribed", 2), ("seats_changed", 5), ("canceled", 5)]
    # Stripe's own event for that update (replayed from the API) records nothing new
    async with env.sessions() as session:
        await apply_subscription_event(session, remote)
        await session.commit()
    assert len(await history(env, org_id)) == 3


@on_stripe
async def test_stripe_refusal_is_422_and_writes_no_subscription(env: Env, localstripe: str) -> None:
    owner, org_id, plan_id, _ = await stripe_team(env, localstripe, card=False)
    response = await subscribe(owner, org_id, plan_id, 2)
    assert response.status_code == 422
    assert response.json()["error"].startswith("The payment provider refused the subscription")
    assert await subscription_count(env) == 0
    assert await history(env, org_id) == []


@on_stripe
async def test_stripe_creates_the_customer_when_missing(env: Env, localstripe: str) -> None:
    owner, org_id, plans = await team(env)
    async with env.sessions() as session:
        plan = await session.get(models.Plan, plans["teams-monthly"])
        assert plan is not None
        provider = StripeSubscriptions(STRIPE_KEY, localstripe)
        plan.provider_price_id = await provider.ensure_plan(plan)
        await provider.close()
        await session.commit()
    # localstripe refuses a subscription without a card; the customer is kept for next time
    response = await subscribe(owner, org_id, plans["teams-monthly"], 1)
    assert response.status_code == 422
    customer_id = await env.scalar(
        select(models.Account.provider_customer_id).where(models.Account.organization_id == org_id)
    )
    assert customer_id and customer_id.startswith("cus_")


@on_stripe
async def test_stripe_plan_without_provider_id_is_422(env: Env, localstripe: str) -> None:
    owner, org_id, plans = await team(env)
    response = await subscribe(owner, org_id, plans["teams-monthly"], 1)
    assert response.status_code == 422
    assert response.json()["error"] == "This plan cannot be purchased yet"


async def test_ensure_plan_creates_once_on_stripe(env: Env, localstripe: str) -> None:
    plans = await seed(env)
    provider = StripeSubscriptions(STRIPE_KEY, localstripe)
    try:
        async with env.sessions() as session:
            plan = await session.get(models.Plan, plans["pro-yearly"])
            assert plan is not None
            plan.provider_price_id = f"gw_test_{plan.id.lower()}"
            first = await provider.ensure_plan(plan)
            again = await provider.ensure_plan(plan)
        assert first == again == plan.provider_price_id
        remote = (await stripe_client(localstripe).v1.plans.retrieve_async(first)).to_dict()
        assert remote["amount"] == 20_000 and remote["interval"] == "year"
    finally:
        await provider.close()


async def test_concurrent_subscribes_create_one_subscription(env: Env) -> None:
    owner, org_id, plans = await team(env)
    body = {"planId": plans["teams-monthly"], "seats": 2}
    responses = await asyncio.gather(
        *(owner.post(f"/organizations/{org_id}/plan", json=body) for _ in range(4))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1, [r.text for r in responses]
    assert await subscription_count(env) == 1
