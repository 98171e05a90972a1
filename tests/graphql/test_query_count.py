"""Nested lists cost one query per level: the statement count does not grow with the rows."""

from __future__ import annotations

from typing import Any

import pytest

from tests.billing.helpers import seed
from tests.conftest import Client, Env
from tests.usage.helpers import event, ingest_ok

MEMBERS_WITH_USAGES = """query ($id: ID!) {
  organization(id: $id) {
    members(first: 20) {
      edges { node { user { email } usages(first: 5) { edges { node { id } } } } }
    }
  }
}"""

VIEWER_USAGES = """{
  viewer {
    usages(first: 20) {
      edges { node { id user { email } organization { name } } }
    }
  }
}"""


# The statement counts hold on both GraphQL executors (compiled plans are the default).
EXECUTORS = [
    pytest.param(mode, marks=pytest.mark.settings(graphql_executor=mode), id=mode)
    for mode in ("compiled", "standard")
]

USER_PAGE = """query ($id: ID!) {
  user(id: $id) {
    id email displayName
    usages(first: 50) { nodes { id modelName promptTokens completionTokens creditsUsed createdAt } }
    payments(first: 20) { nodes { id status amountCents credits createdAt paidAt } }
  }
}"""


async def _statements(env: Env, client: Client, query: str, variables: Any = None) -> int:
    await client.gql_data(query, variables)  # warm up: the API key's last-used stamp
    with env.counter.counting() as statements:
        await client.gql_data(query, variables)
    return len(statements)


async def _organization_with_members(env: Env, members: int) -> tuple[Client, str]:
    owner = await env.user()
    org_id = await env.organization(owner)
    people = [owner]
    for _ in range(members - 1):
        person = await env.member(org_id)
        people.append(person)
    await ingest_ok(
        env,
        *[event(p.user_id, organizationId=org_id) for p in people for _ in range(6)],
    )
    return owner, org_id


@pytest.mark.parametrize("executor", EXECUTORS)
async def test_members_with_usages_cost_the_same_for_2_and_20_members(
    env: Env, executor: str
) -> None:
    counts = []
    for size in (2, 20):
        owner, org_id = await _organization_with_members(env, size)
        data = await owner.gql_data(MEMBERS_WITH_USAGES, {"id": org_id})
        edges = data["organization"]["members"]["edges"]
        assert len(edges) == size
        assert all(len(e["node"]["usages"]["edges"]) == 5 for e in edges)
        counts.append(await _statements(env, owner, MEMBERS_WITH_USAGES, {"id": org_id}))
    assert counts[0] == counts[1], counts
    # API key, then one per level: the organization (with the caller's membership), members
    # page with their users (the query shows them: read in the same statement), their usage
    # pages. With the compiled executor on PostgreSQL the members page is read ahead, in the
    # membership's statement (schema/declare.py `reads_ahead`): one statement less.
    ahead = executor == "compiled" and env.backend == "postgresql"
    assert counts[0] == (3 if ahead else 4), counts


DASHBOARD = """query ($id: ID!) {
  organization(id: $id) {
    members(first: 20) {
      nodes { id role user { email } usages(first: 5) { nodes { id modelName createdAt } } }
    }
  }
}"""


@pytest.mark.parametrize("executor", EXECUTORS)
async def test_a_dashboard_costs_the_same_for_2_and_20_members(env: Env, executor: str) -> None:
    counts = []
    for size in (2, 20):
        owner, org_id = await _organization_with_members(env, size)
        data = await owner.gql_data(DASHBOARD, {"id": org_id})
        nodes = data["organization"]["members"]["nodes"]
        assert len(nodes) == size and all(len(n["usages"]["nodes"]) == 5 for n in nodes)
        counts.append(await _statements(env, owner, DASHBOARD, {"id": org_id}))
    assert counts[0] == counts[1], counts
    # As above; with the compiled executor on PostgreSQL the members page has PostgreSQL write
    # the members as JSON, their users and usage pages inside (schema/engine/json_sql.py
    # `JsonPage`): one statement less (was 4 before `declare.ToMany`); and that page, read
    # ahead as the owner's role last seen (resolvers/members.py `members_page_ahead`), goes
    # with the caller's membership: one less again (was 3).
    inside = executor == "compiled" and env.backend == "postgresql"
    assert counts[0] == (2 if inside else 4), counts


@pytest.mark.parametrize("executor", EXECUTORS)
async def test_viewer_usages_cost_the_same_for_2_and_20_usages(env: Env, executor: str) -> None:
    counts = []
    for size in (2, 20):
        alice = await env.user()
        orgs = [await env.organization(alice, f"Org {i}") for i in range(3)]
        await ingest_ok(
            env,
            *[
                event(alice.user_id, organizationId=None if i == 1 else orgs[i % 3])
                for i in range(size)
            ],
        )
        data = await alice.gql_data(VIEWER_USAGES)
        assert len(data["viewer"]["usages"]["edges"]) == size
        counts.append(await _statements(env, alice, VIEWER_USAGES))
    assert counts[0] == counts[1], counts


@pytest.mark.parametrize("executor", EXECUTORS)
async def test_user_page_sends_one_statement_per_level(env: Env, executor: str) -> None:
    """Q2 of the benchmark: API key (with the caller's own user row), then the usage page and
    the payment page (which finds the personal account itself), siblings that PostgreSQL reads
    in one statement (gateway/db/coalesce.py) and SQLite in two; 2 or 30 rows."""
    counts = []
    for size in (2, 30):
        alice = await env.user()
        await ingest_ok(env, *[event(alice.user_id) for _ in range(size)])
        data = await alice.gql_data(USER_PAGE, {"id": alice.user_id})
        assert len(data["user"]["usages"]["nodes"]) == size
        counts.append(await _statements(env, alice, USER_PAGE, {"id": alice.user_id}))
    assert counts[0] == counts[1], counts
    assert counts[0] == (2 if env.backend == "postgresql" else 3), counts


async def test_the_callers_own_user_is_read_with_the_api_key(env: Env) -> None:
    alice = await env.user(email="alice-own-row@example.com", name="Alice")
    query = "query ($id: ID!) { user(id: $id) { id email displayName } }"
    assert await _statements(env, alice, query, {"id": alice.user_id}) == 1
    data = await alice.gql_data(query, {"id": alice.user_id})
    assert data["user"] == {
        "id": alice.user_id,
        "email": "alice-own-row@example.com",
        "displayName": "Alice",
    }


async def test_the_viewer_is_read_with_the_api_key(env: Env) -> None:
    alice = await env.user(name="Alice")
    query = "{ viewer { id displayName } }"
    assert await _statements(env, alice, query) == 1
    assert (await alice.gql_data(query))["viewer"] == {"id": alice.user_id, "displayName": "Alice"}


async def test_a_request_that_wrote_reads_the_callers_user_again(env: Env) -> None:
    """The row authentication read is not shown after the request changed it: the caller's
    name, through their membership's user, is the one the mutation wrote."""
    alice = await env.user(name="Before")
    await env.organization(alice)
    data = await alice.gql_data(
        """mutation { updateProfile(input: {displayName: "After"}) {
            errors { code } user { displayName organizations { user { displayName } } } } }"""
    )
    payload = data["updateProfile"]
    assert payload["errors"] == []
    assert payload["user"]["displayName"] == "After"
    assert [m["user"]["displayName"] for m in payload["user"]["organizations"]] == ["After"]


async def test_member_usages_route_sends_three_statements(env: Env) -> None:
    """API key; the caller's membership in the live organization with the member and its
    user; usage page."""
    owner, org_id = await _organization_with_members(env, 2)
    member_id = await env.add_member(org_id, await env.user(), "member")
    path = f"/organizations/{org_id}/members/{member_id}/usages"
    assert (await owner.get(path)).status_code == 200  # warm up: the key's last-used stamp
    with env.counter.counting() as statements:
        response = await owner.get(path)
    assert response.status_code == 200
    assert len(statements) == 3, statements


SUBSCRIPTION = """query ($id: ID!) { organization(id: $id) { subscription { id seats } } }"""
SUBSCRIPTION_WITH_PLAN = """query ($id: ID!) {
  organization(id: $id) { subscription { id seats plan { name pricePerSeatCents } } }
}"""


@pytest.mark.parametrize("executor", EXECUTORS)
async def test_an_organizations_plan_comes_with_its_subscription(env: Env, executor: str) -> None:
    """The current subscription's read brings its plan: asking for the plan costs no
    statement more."""
    owner = await env.user()
    org_id = await env.organization(owner)
    plans = await seed(env)
    chosen = await owner.post(
        f"/organizations/{org_id}/plan", json={"planId": plans["teams-monthly"], "seats": 3}
    )
    assert chosen.status_code == 201, chosen.text
    data = await owner.gql_data(SUBSCRIPTION_WITH_PLAN, {"id": org_id})
    assert data["organization"]["subscription"]["plan"]["name"] == "teams-monthly"
    alone = await _statements(env, owner, SUBSCRIPTION, {"id": org_id})
    with_plan = await _statements(env, owner, SUBSCRIPTION_WITH_PLAN, {"id": org_id})
    assert with_plan == alone, (alone, with_plan)


SIBLINGS_FROM_LOADERS_AND_PAGES = """query ($id: ID!) {
  user(id: $id) {
    balance { amount }
    payments(first: 5) { nodes { id amountCents } }
    organizations { id role }
  }
}"""


@pytest.mark.settings(graphql_executor="compiled")
async def test_a_levels_loader_reads_go_in_the_statement_of_its_pages(env: Env) -> None:
    """On PostgreSQL a level's siblings are one statement (gateway/db/coalesce.py), those its
    loaders read (balance, memberships), whose batches start three turns after their loads,
    with the pages read at once: the key's read, then one statement. SQLite reads each alone."""
    owner = await env.user()
    await env.organization(owner)
    statements = await _statements(
        env, owner, SIBLINGS_FROM_LOADERS_AND_PAGES, {"id": owner.user_id}
    )
    assert statements == (2 if env.backend == "postgresql" else 4), statements


ORGANIZATION_BILLING = """query ($id: ID!) {
  organization(id: $id) {
    balance { amount }
    payments(first: 5) { nodes { id amountCents } }
    planHistory(first: 5) { nodes { action } }
  }
}"""


@pytest.mark.settings(graphql_executor="compiled")
async def test_an_organizations_payment_and_plan_pages_need_no_account_read_first(
    env: Env,
) -> None:
    """The pages find the organization's account in their own statements, so on PostgreSQL
    they go with the balance's read, and all of them are read ahead with the caller's
    membership (schema/declare.py `reads_ahead`): the key, then one statement."""
    owner = await env.user()
    org_id = await env.organization(owner)
    statements = await _statements(env, owner, ORGANIZATION_BILLING, {"id": org_id})
    assert statements == (2 if env.backend == "postgresql" else 5), statements


MEMBERS_COUNTED = """query ($id: ID!) {
  organization(id: $id) { members(first: 2) { %s nodes { role } } }
}"""
COUNTED = "fragment Counted on MemberConnection { totalCount }"


@pytest.mark.settings(graphql_executor="compiled")
async def test_a_connections_total_count_is_read_with_its_page(env: Env) -> None:
    """A selected `totalCount` starts its count with the page's read: on PostgreSQL they go
    as one statement (the key, the membership, then one); SQLite reads each alone. However it
    is selected (a fragment, twice under aliases), the count is the same."""
    owner, org_id = await _organization_with_members(env, 3)
    plain = await _statements(env, owner, MEMBERS_COUNTED % "", {"id": org_id})
    counted = await _statements(env, owner, MEMBERS_COUNTED % "totalCount", {"id": org_id})
    assert counted == (plain if env.backend == "postgresql" else plain + 1), (plain, counted)
    selected = "...Counted again: totalCount"
    data = await owner.gql_data(MEMBERS_COUNTED % selected + COUNTED, {"id": org_id})
    members = data["organization"]["members"]
    assert (members["totalCount"], members["again"], len(members["nodes"])) == (3, 3, 2)
