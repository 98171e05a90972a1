"""Seats hold: an organization on a plan never has more members than seats, even when people
accept invites at the same moment; sending invites tells how many seats are free."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import func, select

from gateway.db import models
from tests.billing.helpers import seed, subscribe
from tests.conftest import Client, Env
from tests.documents import mutation
from tests.envelopes import assert_refused, data_of

NO_SEATS = "No seats left: ask an owner to add seats"
ACCEPT = mutation("acceptInvite", "member { id }")
SEND = mutation("sendInvites", "seatsAvailable invites { acceptToken }")
SEATS = "query($id: ID!) { organization(id: $id) { subscription { seats seatsAvailable } } }"


async def organization(env: Env, *, members: int, seats: int | None) -> tuple[Client, str]:
    """An owner and their organization with `members` more, on the teams plan with `seats`
    (no plan when None)."""
    plans = await seed(env)
    owner = await env.user()
    org_id = await env.organization(owner)
    for _ in range(members):
        await env.add_member(org_id, await env.user())
    if seats is not None:
        data_of(await subscribe(owner, org_id, plans["teams-monthly"], seats), 201)
    return owner, org_id


async def invited(env: Env, owner: Client, org_id: str, count: int) -> list[tuple[Client, str]]:
    """`count` new users, each invited by the owner: (user, accept token)."""
    people = [await env.user() for _ in range(count)]
    emails = [await email_of(env, person) for person in people]
    sent = data_of(
        await owner.post(
            f"/organizations/{org_id}/invites",
            json={"invites": [{"email": e, "role": "member"} for e in emails]},
        ),
        201,
    )["items"]
    tokens = {item["email"]: item["acceptToken"] for item in sent}
    return [(person, tokens[email]) for person, email in zip(people, emails, strict=True)]


async def email_of(env: Env, client: Client) -> str:
    email: str = await env.scalar(select(models.User.email).where(models.User.id == client.user_id))
    return email


async def member_count(env: Env, org_id: str) -> int:
    return int(
        await env.scalar(
            select(func.count())
            .select_from(models.Member)
            .where(models.Member.organization_id == org_id)
        )
    )


async def accept(client: Client, token: str) -> Any:
    return await client.post("/invites/accept", json={"token": token})


async def test_accepting_into_a_free_seat_joins(env: Env) -> None:
    owner, org_id = await organization(env, members=1, seats=3)
    [(bob, token)] = await invited(env, owner, org_id, 1)
    assert data_of(await accept(bob, token))["userId"] == bob.user_id
    assert await member_count(env, org_id) == 3


async def test_accepting_when_every_seat_is_taken_is_409_and_writes_nothing(env: Env) -> None:
    owner, org_id = await organization(env, members=1, seats=2)
    [(bob, token)] = await invited(env, owner, org_id, 1)
    assert_refused(await accept(bob, token), 409, NO_SEATS)
    assert await member_count(env, org_id) == 2
    invite = await env.scalar(select(models.Invite))
    assert invite.status == "pending"  # usable once an owner adds a seat
    await owner.put(f"/organizations/{org_id}/plan/seats", json={"seats": 3})
    assert data_of(await accept(bob, token))["userId"] == bob.user_id


async def test_graphql_acceptance_without_a_seat_is_a_typed_error(env: Env) -> None:
    owner, org_id = await organization(env, members=0, seats=1)
    [(bob, token)] = await invited(env, owner, org_id, 1)
    data = await bob.gql_data(ACCEPT, {"input": {"token": token}})
    assert data["acceptInvite"] == {
        "errors": [{"code": "SEATS_EXHAUSTED", "message": NO_SEATS, "field": None}],
        "member": None,
    }


async def test_organizations_without_a_plan_have_no_seat_limit(env: Env) -> None:
    owner, org_id = await organization(env, members=3, seats=None)
    [(bob, token)] = await invited(env, owner, org_id, 1)
    assert data_of(await accept(bob, token))["userId"] == bob.user_id


async def test_racing_acceptances_for_the_last_seat_let_one_in(env: Env) -> None:
    owner, org_id = await organization(env, members=1, seats=3)
    racers = await invited(env, owner, org_id, 4)
    responses = await asyncio.gather(*(accept(client, token) for client, token in racers))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 409, 409, 409], [r.text for r in responses]
    refused = [r for r in responses if r.status_code == 409]
    assert all(r.json() == {"success": False, "error": NO_SEATS} for r in refused)
    assert await member_count(env, org_id) == 3


async def test_sending_invites_reports_free_seats(env: Env) -> None:
    owner, org_id = await organization(env, members=1, seats=5)
    bob = await env.user()
    data = await owner.gql_data(
        SEND,
        {
            "input": {
                "organizationId": org_id,
                "invites": [{"email": await email_of(env, bob), "role": "MEMBER"}],
            }
        },
    )
    assert data["sendInvites"]["errors"] == []
    assert data["sendInvites"]["seatsAvailable"] == 3
    found = await owner.gql_data(SEATS, {"id": org_id})
    assert found["organization"]["subscription"] == {"seats": 5, "seatsAvailable": 3}


async def test_sending_invites_without_a_plan_reports_no_seat_count(env: Env) -> None:
    owner, org_id = await organization(env, members=0, seats=None)
    data = await owner.gql_data(
        SEND,
        {"input": {"organizationId": org_id, "invites": [{"email": "x@example.com"}]}},
    )
    assert data["sendInvites"]["seatsAvailable"] is None


async def test_seats_below_the_member_count_stay_422(env: Env) -> None:
    owner, org_id = await organization(env, members=2, seats=3)
    response = await owner.put(f"/organizations/{org_id}/plan/seats", json={"seats": 2})
    assert_refused(response, 422, "seats must be at least the number of members (3)")
