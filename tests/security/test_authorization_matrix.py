"""The authorization matrix: every REST route, every GraphQL root field and mutation, and every
type `node(id:)` reaches, called as each kind of caller, with the outcome each must get.

Rows are enumerated against the route table (`gateway/rest/routes.py`) and the schema
(`schema.graphql`, held to the code by tests/graphql/test_schema_export.py): a route, field or node type
without a row fails here. Reads share one seeded world per database; anything that may write
runs on a freshly seeded organization and users of its own.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest
from sqlalchemy import select

from gateway.app import create_app
from gateway.db import models
from gateway.rest.routes import ENDPOINTS
from resolvers.api_keys import insert_api_key
from resolvers.invites import hash_token, new_token
from resolvers.plan_catalog import seed_plans
from resolvers.usage import rollups
from resolvers.users import create_user
from schema import NODE_TYPES
from tests.conftest import BACKENDS, PG_URL, base_settings, create_migrated_schema, drop_schema

# --- callers ---------------------------------------------------------------------------------

ANON, BAD, REVOKED, SERVICE = "anonymous", "bad_token", "revoked_key", "service"
OUTSIDER, MEMBER, ADMIN, OWNER = "outsider", "member", "admin", "owner"
# The owner's organization keys: for the organization under test, and for another one.
KEY_HERE, KEY_ELSEWHERE = "org_key_same", "org_key_other"
CALLERS = (ANON, BAD, REVOKED, OUTSIDER, MEMBER, ADMIN, OWNER, KEY_HERE, KEY_ELSEWHERE, SERVICE)
USERS = (OUTSIDER, MEMBER, ADMIN, OWNER)
SERVICE_TOKEN = "service-token-for-tests"

OK = "ok"  # REST: any 2xx; GraphQL: data without errors
NULL = "null"  # GraphQL: the field is null (or a list of nulls), no error


@dataclass(frozen=True)
class Expect:
    """The outcome per caller: an HTTP status (or OK) on REST, a code (or OK/NULL) on GraphQL."""

    outcomes: dict[str, Any]

    def but(self, **changes: Any) -> Expect:
        return Expect({**self.outcomes, **changes})


def _rest(*, unauthenticated: Any = 401, service: Any = 401, **callers: Any) -> Expect:
    return Expect(
        {ANON: unauthenticated, BAD: unauthenticated, REVOKED: unauthenticated, SERVICE: service}
        | callers
    )


# REST classes. An organization route: strangers (and another organization's key) get 404, a
# role too low 403. A personal route: every user for themself, never an organization's key.
ORG_MEMBERS = _rest(outsider=404, member=OK, admin=OK, owner=OK, org_key_same=OK, org_key_other=404)
ORG_MANAGERS = ORG_MEMBERS.but(member=403)
ORG_OWNERS = ORG_MANAGERS.but(admin=403)
PERSONAL = _rest(outsider=OK, member=OK, admin=OK, owner=OK, org_key_same=403, org_key_other=403)
ANY_USER = PERSONAL.but(org_key_same=OK, org_key_other=OK)
SERVICE_ONLY = Expect(dict.fromkeys(CALLERS, 401) | {SERVICE: OK})


# --- the seeded world ------------------------------------------------------------------------


@dataclass
class World:
    """An organization with an owner, an admin and a member; an outsider with an organization
    of their own; the owner's keys for the organization and for a second one; and the things
    routes take ids of. The per-caller maps name each caller's own personal payment, spare key
    and invite token (an organization key's are its owner's)."""

    tokens: dict[str, str | None]
    user_ids: dict[str, str]
    org_id: str
    elsewhere_id: str
    member_id: str
    invite_id: str
    org_payment_id: str
    plan_id: str
    personal_payment: dict[str, str]
    spare_key: dict[str, str]
    accept_token: dict[str, str]
    nodes: dict[str, str] = field(default_factory=dict)
    organizations: dict[str, str] = field(default_factory=dict)

    def caller_user(self, caller: str) -> str:
        """`{id}` of `/users/{id}/…`: the caller's own id (the owner's for callers without one)."""
        return self.user_ids.get(caller, self.user_ids[OWNER])

    def path(self, template: str, caller: str) -> str:
        personal = template.startswith("/users/")
        values = {
            "id": self.caller_user(caller),
            "orgId": self.org_id,
            "memberId": self.member_id,
            "inviteId": self.invite_id,
            "planId": self.plan_id,
            "keyId": self.spare_key.get(caller, self.spare_key[OWNER]),
            "paymentId": (
                self.personal_payment.get(caller, self.personal_payment[OWNER])
                if personal
                else self.org_payment_id
            ),
        }
        return template.format(**values)


async def seed_world(sessions: Any, http: httpx.AsyncClient, plans: dict[str, str]) -> World:
    tag = uuid.uuid4().hex[:8]
    now = models.utcnow()
    tokens: dict[str, str | None] = {
        ANON: None,
        BAD: "gwk_000000000000_not-a-real-key",
        SERVICE: SERVICE_TOKEN,
    }
    user_ids: dict[str, str] = {}
    personal_payment: dict[str, str] = {}
    spare_key: dict[str, str] = {}
    accept_token: dict[str, str] = {}
    nodes: dict[str, str] = {}
    async with sessions() as session:
        users = {}
        for name in (*USERS, "host"):
            users[name] = await create_user(session, email=f"{name}-{tag}@example.com")
            user_ids[name] = users[name].id

        async def organization(name: str, owner: str) -> tuple[models.Organization, str]:
            org = models.Organization(
                name=name,
                default_remote_config='{"version": "1"}',
                remote_config_enabled=name.startswith("Here"),
            )
            session.add(org)
            await session.flush()
            account = models.Account(kind="organization", organization_id=org.id)
            session.add(account)
            session.add(
                models.Member(organization_id=org.id, user_id=user_ids[owner], role="owner")
            )
            await session.flush()
            return org, account.id

        org, org_account = await organization(f"Here {tag}", OWNER)
        elsewhere, _ = await organization(f"Elsewhere {tag}", OWNER)
        outsiders, _ = await organization(f"Outsider's {tag}", OUTSIDER)
        host, _ = await organization(f"Host {tag}", "host")
        session.add(models.Member(organization_id=org.id, user_id=user_ids[ADMIN], role="admin"))
        member = models.Member(organization_id=org.id, user_id=user_ids[MEMBER], role="member")
        session.add(member)
        for name in USERS:
            _, tokens[name] = await insert_api_key(session, user_id=user_ids[name], name="auth")
            key, _ = await insert_api_key(session, user_id=user_ids[name], name="spare")
            await session.flush()
            spare_key[name] = key.id
        revoked, tokens[REVOKED] = await insert_api_key(
            session, user_id=user_ids[MEMBER], name="revoked"
        )
        revoked.revoked_at = now
        for caller, scope in ((KEY_HERE, org.id), (KEY_ELSEWHERE, elsewhere.id)):
            _, tokens[caller] = await insert_api_key(
                session, user_id=user_ids[OWNER], name=caller, organization_id=scope
            )
            key, _ = await insert_api_key(
                session, user_id=user_ids[OWNER], name="spare", organization_id=scope
            )
            await session.flush()
            spare_key[caller] = key.id
            user_ids[caller] = user_ids[OWNER]
        accounts: dict[str | None, str] = {}
        for account in (await session.execute(select(models.Account))).scalars():
            if account.user_id is not None:
                accounts[account.user_id] = account.id

        def payment(account_id: str, creator: str) -> models.Payment:
            found = models.Payment(
                account_id=account_id,
                kind="checkout",
                status="succeeded",
                amount_cents=1000,
                credits=10_000_000,
                creator_user_id=creator,
                provider="sandbox",
                provider_payment_id=f"sandbox_{uuid.uuid4().hex}",
                paid_at=now,
            )
            session.add(found)
            return found

        org_payment = payment(org_account, user_ids[OWNER])
        personal = {name: payment(accounts[user_ids[name]], user_ids[name]) for name in USERS}
        invite = models.Invite(
            organization_id=org.id,
            email=f"invitee-{tag}@example.com",
            role="member",
            token_hash=hash_token(new_token()),
            invited_by_user_id=user_ids[OWNER],
            expires_at=now + timedelta(days=3),
        )
        session.add(invite)
        for name in USERS:
            token = new_token()
            accept_token[name] = token
            session.add(
                models.Invite(
                    organization_id=host.id,
                    email=f"{name}-{tag}@example.com",
                    role="member",
                    token_hash=hash_token(token),
                    invited_by_user_id=user_ids["host"],
                    expires_at=now + timedelta(days=3),
                )
            )
        accept_token[KEY_HERE] = accept_token[KEY_ELSEWHERE] = accept_token[OWNER]
        member_usage = models.UsageRecord(
            generation_id=f"gen-m-{tag}",
            account_id=org_account,
            user_id=user_ids[MEMBER],
            organization_id=org.id,
        )
        owner_usage = models.UsageRecord(
            generation_id=f"gen-o-{tag}",
            account_id=accounts[user_ids[OWNER]],
            user_id=user_ids[OWNER],
        )
        session.add_all([member_usage, owner_usage])
        await session.flush()
        # As ingestion writes usage: its roll-ups in the same transaction.
        await rollups.add_usage(session, [u.model_dump() for u in (member_usage, owner_usage)])
        personal_payment = {name: p.id for name, p in personal.items()}
        personal_payment[KEY_HERE] = personal_payment[KEY_ELSEWHERE] = personal_payment[OWNER]
        nodes = {
            "user": user_ids[MEMBER],
            "organization": org.id,
            "member": member.id,
            "usage in the organization": member_usage.id,
            "personal usage": owner_usage.id,
            "invite": invite.id,
            "personal api key": spare_key[MEMBER],
            "organization api key": spare_key[KEY_HERE],
            "organization payment": org_payment.id,
            "personal payment": personal[OWNER].id,
            "plan": plans["teams-monthly"],
        }
        organizations = {
            "here": org.id,
            "elsewhere": elsewhere.id,
            "outsider's": outsiders.id,
            "host": host.id,
        }
        ids = {
            "org_id": org.id,
            "elsewhere_id": elsewhere.id,
            "member_id": member.id,
            "invite_id": invite.id,
            "org_payment_id": org_payment.id,
        }
        await session.commit()
    world = World(
        tokens=tokens,
        user_ids=user_ids,
        plan_id=plans["teams-monthly"],
        personal_payment=personal_payment,
        spare_key=spare_key,
        accept_token=accept_token,
        nodes=nodes,
        organizations=organizations,
        **ids,
    )
    subscribed = await http.post(
        f"/api/v1/organizations/{world.org_id}/plan",
        json={"planId": world.plan_id, "seats": 5},
        headers={"Authorization": f"Bearer {tokens[OWNER]}"},
    )
    assert subscribed.status_code == 201, subscribed.text
    world.nodes["organization subscription"] = subscribed.json()["data"]["subscriptionId"]
    return world


@dataclass
class Matrix:
    """One app and database per backend for the whole module, its shared read-only world, and
    fresh worlds on demand for rows that write."""

    http: httpx.AsyncClient
    sessions: Any
    plans: dict[str, str]
    world: World

    async def fresh(self) -> World:
        return await seed_world(self.sessions, self.http, self.plans)

    async def world_for(self, writes: bool, current: World, seen: dict[str, Any]) -> World:
        """The world the next caller's request runs in: the shared one for reads; for a row
        that writes, a fresh one at the start and after every success. A refused request
        writes nothing (every failure rolls back), so the callers after it may share its
        world; a refusal that did write fails its row anyway."""
        if not writes:
            return self.world
        if current is self.world or (seen and list(seen.values())[-1] == OK):
            return await self.fresh()
        return current

    async def call(
        self, world: World, caller: str, method: str, path: str, body: Any = None
    ) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        token = world.tokens[caller]
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return await self.http.request(method, path, json=body, headers=headers)


# The executor that serves users. (The suite's `verify` mode also compares it with graphql-core's
# on every query; the matrix is about who sees what, and both run the same resolvers.)
EXECUTOR = {
    "graphql_executor": "compiled",
    # The nested paths are generated to reach everything at once, far beyond what a client
    # asks (schema/limits.py would refuse them as too costly): the matrix is about who sees
    # what, so its documents are let through.
    "graphql_max_cost": 10**9,
}


@pytest.fixture(scope="module", params=BACKENDS)
async def matrix(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
) -> AsyncIterator[Matrix]:
    schema = None
    if request.param == "sqlite":
        db = tmp_path_factory.mktemp("matrix") / "matrix.db"
        shutil.copy(sqlite_template, db)
        settings = base_settings(database_url=f"sqlite+aiosqlite:///{db}", **EXECUTOR)
    else:
        assert PG_URL
        schema = await create_migrated_schema("gw_matrix")
        settings = base_settings(database_url=PG_URL, database_schema=schema, **EXECUTOR)
    app = create_app(settings)
    state = app.state.gateway
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            async with state.session_factory() as session:
                plans = {plan.name: plan.id for plan, _ in await seed_plans(session)}
                await session.commit()
            world = await seed_world(state.session_factory, http, plans)
            yield Matrix(http, state.session_factory, plans, world)
    finally:
        await state.close()
        if schema is not None:
            await drop_schema(schema)


async def test_the_worlds_organization_usage_is_in_its_daily_roll_ups(matrix: Matrix) -> None:
    """The world's usage rows are written as ingestion writes them, roll-ups included: else an
    organization's usage summary (roll-ups for whole days, raw rows for the partial ones)
    disagrees with the raw rows once the day they were written is over (a run that crosses
    midnight UTC)."""
    async with matrix.sessions() as session:
        usage = (await session.execute(select(models.UsageRecord))).scalars().all()
        daily = (await session.execute(select(models.UsageDaily))).scalars().all()
    expected = sorted(
        (u.organization_id, u.created_at.date(), u.user_id, u.model_name, u.credits_used)
        for u in usage
        if u.organization_id is not None
    )
    assert expected, "the world has organization usage"
    assert (
        sorted((d.organization_id, d.day, d.user_id, d.model_name, d.credits_used) for d in daily)
        == expected
    )


def _outcome(response: httpx.Response) -> Any:
    status = response.status_code
    if 200 <= status < 300:
        return OK
    if status < 500:
        assert response.json()["success"] is False, response.text  # the contract's envelope
    return status


# --- REST rows -------------------------------------------------------------------------------

Body = Any  # a JSON body, or a function of (world, caller) giving one


@dataclass(frozen=True)
class Rest:
    expect: Expect
    body: Body = None

    def body_for(self, world: World, caller: str) -> Any:
        return self.body(world, caller) if callable(self.body) else self.body


def _usage_event(world: World, caller: str) -> dict[str, Any]:
    return {
        "generationId": f"gen-{uuid.uuid4().hex}",
        "provider": "p",
        "model": "m",
        "modelType": "chat",
        "promptTokens": 1,
        "completionTokens": 1,
        "costUsd": 0.0,
        "credits": 1,
        "userId": world.user_ids[OWNER],
        "organizationId": world.org_id,
    }


AUTO_TOP_UP = {"enabled": False, "threshold": 0, "amountCents": 1000}
CHECKOUT = {"amountCents": 1000}
# Buying credits reaches the domain (no default payment method: 422) for whoever may buy.
PURCHASE_PERSONAL = Rest(PERSONAL.but(outsider=422, member=422, admin=422, owner=422), CHECKOUT)
PURCHASE_ORG = Rest(ORG_MANAGERS.but(admin=422, owner=422, org_key_same=422), CHECKOUT)
# No default payment method: the route is reached, and answers its own 404.
PAYMENT_METHOD_PERSONAL = PERSONAL.but(outsider=404, member=404, admin=404, owner=404)
PAYMENT_METHOD_ORG = ORG_MANAGERS.but(admin=404, owner=404, org_key_same=404)

REST: dict[tuple[str, str], Rest] = {
    ("GET", "/users/me"): Rest(ANY_USER),
    ("PATCH", "/users/me"): Rest(PERSONAL, {"displayName": "New name"}),
    # The owner is the last owner of an organization with other members.
    ("DELETE", "/users/me"): Rest(PERSONAL.but(owner=409)),
    ("POST", "/users/me/accept-terms"): Rest(PERSONAL),
    ("GET", "/users/me/remote-config"): Rest(ANY_USER),
    ("PUT", "/users/active-account"): Rest(PERSONAL, {"organizationId": None}),
    ("GET", "/users/me/plan"): Rest(PERSONAL.but(outsider=404, member=404, admin=404, owner=404)),
    ("GET", "/users/{id}/balance"): Rest(PERSONAL),
    ("GET", "/users/{id}/usages"): Rest(PERSONAL),
    ("GET", "/users/{id}/payments"): Rest(PERSONAL),
    ("GET", "/users/{id}/payments/provider/{paymentId}"): Rest(PERSONAL),
    ("GET", "/users/{id}/payments/{paymentId}"): Rest(PERSONAL),
    ("GET", "/users/{id}/payments/{paymentId}/status"): Rest(PERSONAL),
    ("POST", "/users/credits/checkout"): Rest(PERSONAL, CHECKOUT),
    ("POST", "/users/{id}/credits/purchase"): PURCHASE_PERSONAL,
    ("GET", "/users/{id}/auto-top-up"): Rest(PERSONAL),
    ("PUT", "/users/{id}/auto-top-up"): Rest(PERSONAL, AUTO_TOP_UP),
    ("GET", "/users/{id}/payment-method/default"): Rest(PAYMENT_METHOD_PERSONAL),
    ("POST", "/users/{id}/payment-method/setup-session"): Rest(PERSONAL, {}),
    ("GET", "/users/{id}/promotions"): Rest(PERSONAL),
    # An unknown code: whoever may redeem reaches "Promotion not found".
    ("POST", "/users/{id}/promotions/redeem"): Rest(
        PERSONAL.but(**dict.fromkeys(USERS, 404)), {"code": "NOPE"}
    ),
    ("GET", "/organizations/{orgId}/balance"): Rest(ORG_MEMBERS),
    ("GET", "/organizations/{orgId}/payments"): Rest(ORG_MANAGERS),
    ("GET", "/organizations/{orgId}/payments/provider/{paymentId}"): Rest(ORG_MANAGERS),
    ("GET", "/organizations/{orgId}/payments/{paymentId}"): Rest(ORG_MANAGERS),
    ("GET", "/organizations/{orgId}/payments/{paymentId}/status"): Rest(ORG_MANAGERS),
    ("POST", "/organizations/{orgId}/credits/checkout"): Rest(ORG_MANAGERS, CHECKOUT),
    ("POST", "/organizations/{orgId}/credits/purchase"): PURCHASE_ORG,
    ("GET", "/organizations/{orgId}/auto-top-up"): Rest(ORG_MANAGERS),
    ("PUT", "/organizations/{orgId}/auto-top-up"): Rest(ORG_MANAGERS, AUTO_TOP_UP),
    ("GET", "/organizations/{orgId}/payment-method/default"): Rest(PAYMENT_METHOD_ORG),
    ("POST", "/organizations/{orgId}/payment-method/setup-session"): Rest(ORG_MANAGERS, {}),
    ("GET", "/organizations/{orgId}/promotions"): Rest(ORG_MANAGERS),
    ("POST", "/organizations/{orgId}/promotions/redeem"): Rest(
        ORG_MANAGERS.but(admin=404, owner=404, org_key_same=404), {"code": "NOPE"}
    ),
    ("POST", "/organizations"): Rest(PERSONAL, {"name": "New"}),
    ("GET", "/organizations/{orgId}"): Rest(ORG_MEMBERS),
    ("PUT", "/organizations/{orgId}"): Rest(ORG_MANAGERS, {"name": "Renamed"}),
    ("DELETE", "/organizations/{orgId}"): Rest(ORG_OWNERS),
    ("GET", "/organizations/{orgId}/api-keys"): Rest(ORG_MEMBERS),
    ("GET", "/organizations/{orgId}/remote-config"): Rest(ORG_MEMBERS),
    ("GET", "/organizations/{orgId}/metrics"): Rest(ORG_MANAGERS),
    ("GET", "/organizations/{orgId}/members"): Rest(ORG_MEMBERS),
    # The member id is the member's: they may remove themself.
    ("DELETE", "/organizations/{orgId}/members"): Rest(
        ORG_MEMBERS, lambda w, c: {"memberIds": [w.member_id]}
    ),
    ("GET", "/organizations/{orgId}/members/available-roles"): Rest(ORG_MEMBERS),
    ("PUT", "/organizations/{orgId}/members/{memberId}/role"): Rest(
        ORG_MANAGERS, {"role": "admin"}
    ),
    ("GET", "/organizations/{orgId}/members/{memberId}/usages"): Rest(ORG_MEMBERS),
    ("GET", "/organizations/{orgId}/invites"): Rest(ORG_MANAGERS),
    ("POST", "/organizations/{orgId}/invites"): Rest(
        ORG_MANAGERS, lambda w, c: {"invites": [{"email": f"{uuid.uuid4().hex}@example.com"}]}
    ),
    ("GET", "/organizations/{orgId}/invites/count"): Rest(ORG_MANAGERS),
    ("DELETE", "/organizations/{orgId}/invites/{inviteId}"): Rest(ORG_MANAGERS),
    # Each user accepts an invite sent to their own email.
    ("POST", "/invites/accept"): Rest(
        PERSONAL, lambda w, c: {"token": w.accept_token.get(c, w.accept_token[OWNER])}
    ),
    ("GET", "/plans"): Rest(ANY_USER),
    ("GET", "/organizations/{orgId}/plan"): Rest(ORG_MEMBERS),
    ("GET", "/organizations/{orgId}/plan/history"): Rest(ORG_MEMBERS),
    ("GET", "/organizations/{orgId}/plan/{planId}"): Rest(ORG_MEMBERS),
    # The organization is subscribed already: whoever may subscribe reaches the 409.
    ("POST", "/organizations/{orgId}/plan"): Rest(
        ORG_MANAGERS.but(admin=409, owner=409, org_key_same=409),
        lambda w, c: {"planId": w.plan_id, "seats": 5},
    ),
    ("PUT", "/organizations/{orgId}/plan/seats"): Rest(ORG_MANAGERS, {"seats": 6}),
    # To the plan it is on, and with nothing pending: whoever may change reaches the 409.
    ("PUT", "/organizations/{orgId}/plan"): Rest(
        ORG_MANAGERS.but(admin=409, owner=409, org_key_same=409), lambda w, c: {"planId": w.plan_id}
    ),
    ("POST", "/organizations/{orgId}/plan/resume"): Rest(
        ORG_MANAGERS.but(admin=409, owner=409, org_key_same=409)
    ),
    ("DELETE", "/organizations/{orgId}/plan/{planId}"): Rest(ORG_MANAGERS),
    ("GET", "/organizations/{orgId}/usages"): Rest(ORG_MANAGERS),
    ("GET", "/api-keys"): Rest(ANY_USER),
    # An organization's key may only create keys of its organization.
    ("POST", "/api-keys"): Rest(PERSONAL, {"name": "new"}),
    ("DELETE", "/api-keys/{keyId}"): Rest(ANY_USER),
    ("POST", "/internal/usages"): Rest(SERVICE_ONLY, lambda w, c: {"events": [_usage_event(w, c)]}),
}

ROUTES = [(e.method, e.path) for e in ENDPOINTS]


def test_every_rest_route_has_exactly_one_row() -> None:
    assert sorted(set(ROUTES) - set(REST)) == [], "routes without a row in the matrix"
    assert sorted(set(REST) - set(ROUTES)) == [], "rows for routes that do not exist"


def _id(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1]}"


@pytest.mark.parametrize("route", ROUTES, ids=_id)
async def test_rest_route_answers_each_caller_as_its_row_says(
    matrix: Matrix, route: tuple[str, str]
) -> None:
    method, template = route
    row = REST.get(route)
    assert row is not None, f"{_id(route)} has no row in the authorization matrix"
    seen: dict[str, Any] = {}
    world = matrix.world
    for caller in CALLERS:
        world = await matrix.world_for(method != "GET", world, seen)
        response = await matrix.call(
            world,
            caller,
            method,
            "/api/v1" + world.path(template, caller),
            row.body_for(world, caller),
        )
        seen[caller] = _outcome(response)
    assert _differences(seen, row.expect) == {}


def _differences(seen: dict[str, Any], expect: Expect) -> dict[str, str]:
    """Per caller whose outcome is not the row's: "got … expected …"."""
    return {
        caller: f"got {seen[caller]!r}, expected {expect.outcomes.get(caller)!r}"
        for caller in CALLERS
        if seen[caller] != expect.outcomes.get(caller)
    }


@pytest.mark.parametrize(
    "route", [r for r in ROUTES if r[1].startswith("/users/{id}") and r[0] == "GET"], ids=_id
)
async def test_rest_user_route_with_another_users_id_is_not_found(
    matrix: Matrix, route: tuple[str, str]
) -> None:
    """`/users/{id}/…` exists only for the caller's own id: the admin's (and the admin's
    payment) is 404 for every other user and key."""
    world = matrix.world
    path = "/api/v1" + world.path(route[1], ADMIN)
    for caller in (OUTSIDER, MEMBER, OWNER, KEY_HERE, KEY_ELSEWHERE):
        response = await matrix.call(world, caller, route[0], path)
        assert _outcome(response) == 404, (caller, response.text)


# --- GraphQL rows ----------------------------------------------------------------------------

UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, CONFLICT, UNPROCESSABLE = (
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "CONFLICT",
    "UNPROCESSABLE",
)


def _graphql(**callers: Any) -> Expect:
    return Expect(
        {
            ANON: UNAUTHENTICATED,
            BAD: UNAUTHENTICATED,
            REVOKED: UNAUTHENTICATED,
            SERVICE: UNAUTHENTICATED,
        }
        | callers
    )


G_ORG_MEMBERS = _graphql(
    outsider=NOT_FOUND, member=OK, admin=OK, owner=OK, org_key_same=OK, org_key_other=NOT_FOUND
)
G_ORG_MANAGERS = G_ORG_MEMBERS.but(member=FORBIDDEN)
G_ORG_OWNERS = G_ORG_MANAGERS.but(admin=FORBIDDEN)
G_PERSONAL = _graphql(
    outsider=OK, member=OK, admin=OK, owner=OK, org_key_same=FORBIDDEN, org_key_other=FORBIDDEN
)
G_ANY_USER = G_PERSONAL.but(org_key_same=OK, org_key_other=OK)
G_SERVICE_ONLY = Expect(dict.fromkeys(CALLERS, UNAUTHENTICATED) | {SERVICE: OK})
# Shown to the organization's members, null (not an error) for anyone else.
G_SEEN_BY_MEMBERS = G_ORG_MEMBERS.but(outsider=NULL, org_key_other=NULL)
G_SEEN_BY_MANAGERS = G_SEEN_BY_MEMBERS.but(member=NULL)


@dataclass(frozen=True)
class Gql:
    """A document whose one root field is the row's; `variables` a function of (world, caller)."""

    document: str
    expect: Expect
    variables: Callable[[World, str], dict[str, Any]] = lambda w, c: {}
    writes: bool = False


def _fixed(values: dict[str, Any]) -> Callable[[World, str], dict[str, Any]]:
    return lambda w, c: values


def _org(w: World, c: str) -> dict[str, Any]:
    return {"org": w.org_id}


def _mutation(field_name: str, input: str, expect: Expect, variables: Any = None) -> Gql:
    args = f"(input: {input})" if input else ""
    signature = ""
    if variables is not None:
        names = sorted(variables(_SAMPLE, OWNER))
        types = {n: "ID!" for n in ("org", "member", "invite", "plan", "key", "user")}
        signature = "(" + ", ".join(f"${n}: {types.get(n, 'String!')}" for n in names) + ")"
    document = f"mutation{signature} {{ {field_name}{args} {{ errors {{ code }} }} }}"
    return Gql(document, expect, variables or (lambda w, c: {}), writes=True)


# Only the variables' names are read from this stand-in, to declare them in the document.
_SAMPLE = World({}, {OWNER: ""}, "", "", "", "", "", "", {OWNER: ""}, {OWNER: ""}, {OWNER: ""})

GRAPHQL: dict[tuple[str, str], list[Gql]] = {
    ("query", "viewer"): [Gql("{ viewer { id } }", G_ANY_USER)],
    ("query", "user"): [
        Gql(
            "query($id: ID!) { user(id: $id) { id } }",
            G_SEEN_BY_MEMBERS,
            lambda w, c: {"id": w.user_ids[MEMBER]},
        )
    ],
    ("query", "organization"): [
        Gql("query($org: ID!) { organization(id: $org) { id } }", G_SEEN_BY_MEMBERS, _org)
    ],
    ("query", "viewerRemoteConfig"): [
        # Only the organization under test distributes remote config.
        Gql(
            "{ viewerRemoteConfig { organizationId } }",
            G_ANY_USER.but(outsider=NULL, org_key_other=NULL),
        )
    ],
    ("query", "availableRoles"): [
        Gql("query($org: ID!) { availableRoles(organizationId: $org) }", G_ORG_MEMBERS, _org)
    ],
    ("query", "plans"): [Gql("{ plans { id } }", G_ANY_USER)],
    ("query", "plan"): [
        Gql("query($id: ID!) { plan(id: $id) { id } }", G_ANY_USER, lambda w, c: {"id": w.plan_id})
    ],
    ("query", "node"): [
        Gql(
            "query($id: ID!) { node(id: $id) { id } }",
            G_SEEN_BY_MEMBERS,
            lambda w, c: {"id": w.org_id},
        )
    ],
    ("query", "nodes"): [
        Gql(
            "query($ids: [ID!]!) { nodes(ids: $ids) { id } }",
            G_SEEN_BY_MEMBERS,
            lambda w, c: {"ids": [w.org_id]},
        )
    ],
    ("mutation", "updateProfile"): [_mutation("updateProfile", '{displayName: "New"}', G_PERSONAL)],
    ("mutation", "acceptTerms"): [_mutation("acceptTerms", "", G_PERSONAL)],
    ("mutation", "switchActiveAccount"): [
        _mutation("switchActiveAccount", "{organizationId: null}", G_PERSONAL)
    ],
    ("mutation", "deleteAccount"): [_mutation("deleteAccount", "", G_PERSONAL.but(owner=CONFLICT))],
    ("mutation", "createOrganization"): [
        _mutation("createOrganization", '{name: "New"}', G_PERSONAL)
    ],
    ("mutation", "updateOrganization"): [
        _mutation(
            "updateOrganization", '{organizationId: $org, name: "Renamed"}', G_ORG_MANAGERS, _org
        )
    ],
    ("mutation", "deleteOrganization"): [
        _mutation("deleteOrganization", "{organizationId: $org}", G_ORG_OWNERS, _org)
    ],
    ("mutation", "updateRemoteConfig"): [
        _mutation(
            "updateRemoteConfig", "{organizationId: $org, enabled: true}", G_ORG_MANAGERS, _org
        )
    ],
    ("mutation", "changeMemberRole"): [
        _mutation(
            "changeMemberRole",
            "{organizationId: $org, memberId: $member, role: ADMIN}",
            G_ORG_MANAGERS,
            lambda w, c: {"org": w.org_id, "member": w.member_id},
        )
    ],
    ("mutation", "removeMembers"): [
        _mutation(
            "removeMembers",
            "{organizationId: $org, memberIds: [$member]}",
            G_ORG_MEMBERS,
            lambda w, c: {"org": w.org_id, "member": w.member_id},
        )
    ],
    ("mutation", "sendInvites"): [
        _mutation(
            "sendInvites",
            "{organizationId: $org, invites: [{email: $email}]}",
            G_ORG_MANAGERS,
            lambda w, c: {"org": w.org_id, "email": f"{uuid.uuid4().hex}@example.com"},
        )
    ],
    ("mutation", "revokeInvite"): [
        _mutation(
            "revokeInvite",
            "{organizationId: $org, inviteId: $invite}",
            G_ORG_MANAGERS,
            lambda w, c: {"org": w.org_id, "invite": w.invite_id},
        )
    ],
    ("mutation", "acceptInvite"): [
        _mutation(
            "acceptInvite",
            "{token: $token}",
            G_PERSONAL,
            lambda w, c: {"token": w.accept_token.get(c, w.accept_token[OWNER])},
        )
    ],
    ("mutation", "createApiKey"): [_mutation("createApiKey", '{name: "new"}', G_PERSONAL)],
    ("mutation", "deleteApiKey"): [
        _mutation(
            "deleteApiKey",
            "{id: $key}",
            G_ANY_USER,
            lambda w, c: {"key": w.spare_key.get(c, w.spare_key[OWNER])},
        )
    ],
    ("mutation", "recordUsage"): [
        _mutation(
            "recordUsage",
            '{generationId: $gen, provider: "p", model: "m", modelType: "chat", '
            "promptTokens: 1, completionTokens: 1, costUsd: 0, credits: 1, userId: $user}",
            G_SERVICE_ONLY,
            lambda w, c: {"gen": uuid.uuid4().hex, "user": w.user_ids[OWNER]},
        )
    ],
    ("mutation", "recordUsages"): [
        _mutation(
            "recordUsages",
            '{events: [{generationId: $gen, provider: "p", model: "m", modelType: "chat", '
            "promptTokens: 1, completionTokens: 1, costUsd: 0, credits: 1, userId: $user}]}",
            G_SERVICE_ONLY,
            lambda w, c: {"gen": uuid.uuid4().hex, "user": w.user_ids[OWNER]},
        )
    ],
    ("mutation", "startCheckout"): [
        _mutation("startCheckout", "{amountCents: 1000}", G_PERSONAL),
        _mutation(
            "startCheckout", "{amountCents: 1000, organizationId: $org}", G_ORG_MANAGERS, _org
        ),
    ],
    ("mutation", "purchaseCredits"): [
        # No default payment method: reached, and refused by the domain.
        _mutation(
            "purchaseCredits",
            "{amountCents: 1000}",
            G_PERSONAL.but(**dict.fromkeys(USERS, UNPROCESSABLE)),
        ),
        _mutation(
            "purchaseCredits",
            "{amountCents: 1000, organizationId: $org}",
            G_ORG_MANAGERS.but(
                admin=UNPROCESSABLE, owner=UNPROCESSABLE, org_key_same=UNPROCESSABLE
            ),
            _org,
        ),
    ],
    ("mutation", "startPaymentMethodSetup"): [
        _mutation("startPaymentMethodSetup", "{}", G_PERSONAL),
        _mutation("startPaymentMethodSetup", "{organizationId: $org}", G_ORG_MANAGERS, _org),
    ],
    ("mutation", "updateAutoTopUp"): [
        _mutation(
            "updateAutoTopUp", "{enabled: false, threshold: 0, amountCents: 1000}", G_PERSONAL
        ),
        _mutation(
            "updateAutoTopUp",
            "{enabled: false, threshold: 0, amountCents: 1000, organizationId: $org}",
            G_ORG_MANAGERS,
            _org,
        ),
    ],
    ("mutation", "redeemPromotion"): [
        # An unknown code: whoever may redeem reaches "Promotion not found".
        _mutation(
            "redeemPromotion", '{code: "NOPE"}', G_PERSONAL.but(**dict.fromkeys(USERS, NOT_FOUND))
        ),
    ],
    ("mutation", "createPromotion"): [
        _mutation(
            "createPromotion",
            "{code: $code, credits: 1}",
            G_SERVICE_ONLY,
            lambda w, c: {"code": f"M-{uuid.uuid4().hex}"},
        )
    ],
    # An unknown promotion: the service reaches "Promotion not found".
    ("mutation", "endPromotion"): [
        _mutation(
            "endPromotion",
            '{id: "prm-01KZZZZZZZZZZZZZZZZZZZZZZZ"}',
            G_SERVICE_ONLY.but(service=NOT_FOUND),
        )
    ],
    # An unknown payment: the service reaches "Payment not found".
    ("mutation", "refundPayment"): [
        _mutation(
            "refundPayment",
            '{paymentId: "pay-01KZZZZZZZZZZZZZZZZZZZZZZZ"}',
            G_SERVICE_ONLY.but(service=NOT_FOUND),
        )
    ],
    ("mutation", "subscribeToPlan"): [
        # The organization is subscribed already: whoever may subscribe reaches the conflict.
        _mutation(
            "subscribeToPlan",
            "{organizationId: $org, planId: $plan, seats: 5}",
            G_ORG_MANAGERS.but(admin=CONFLICT, owner=CONFLICT, org_key_same=CONFLICT),
            lambda w, c: {"org": w.org_id, "plan": w.plan_id},
        )
    ],
    ("mutation", "changeSeats"): [
        _mutation("changeSeats", "{organizationId: $org, seats: 6}", G_ORG_MANAGERS, _org)
    ],
    ("mutation", "changePlan"): [
        _mutation(
            "changePlan",
            "{organizationId: $org, planId: $plan}",
            G_ORG_MANAGERS.but(admin=CONFLICT, owner=CONFLICT, org_key_same=CONFLICT),
            lambda w, c: {"org": w.org_id, "plan": w.plan_id},
        )
    ],
    ("mutation", "resumeSubscription"): [
        _mutation(
            "resumeSubscription",
            "{organizationId: $org}",
            G_ORG_MANAGERS.but(admin=CONFLICT, owner=CONFLICT, org_key_same=CONFLICT),
            _org,
        )
    ],
    ("mutation", "cancelSubscription"): [
        _mutation(
            "cancelSubscription",
            "{organizationId: $org, planId: $plan}",
            G_ORG_MANAGERS,
            lambda w, c: {"org": w.org_id, "plan": w.plan_id},
        )
    ],
}

SCHEMA = graphql.build_schema((Path(__file__).resolve().parents[2] / "schema.graphql").read_text())
ROOT_FIELDS = [
    *(("query", name) for name in SCHEMA.query_type.fields),  # type: ignore[union-attr]
    *(("mutation", name) for name in SCHEMA.mutation_type.fields),  # type: ignore[union-attr]
]


def test_every_graphql_root_field_and_mutation_has_a_row() -> None:
    assert sorted(set(ROOT_FIELDS) - set(GRAPHQL)) == [], "root fields without a row"
    assert sorted(set(GRAPHQL) - set(ROOT_FIELDS)) == [], "rows for fields that do not exist"


def _gql_outcome(body: dict[str, Any], name: str, mutation: bool) -> Any:
    if body.get("errors"):
        return body["errors"][0].get("extensions", {}).get("code")
    value = body["data"][name]
    if mutation:
        return value["errors"][0]["code"] if value["errors"] else OK
    if value is None or (isinstance(value, list) and value and all(v is None for v in value)):
        return NULL
    return OK


async def _graphql_row(matrix: Matrix, name: str, mutation: bool, row: Gql) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    world = matrix.world
    for caller in CALLERS:
        world = await matrix.world_for(row.writes, world, seen)
        response = await matrix.call(
            world,
            caller,
            "POST",
            "/graphql",
            {"query": row.document, "variables": row.variables(world, caller)},
        )
        assert response.status_code == 200, response.text
        seen[caller] = _gql_outcome(response.json(), name, mutation)
    return seen


@pytest.mark.parametrize("root", ROOT_FIELDS, ids=lambda r: f"{r[0]} {r[1]}")
async def test_graphql_root_field_answers_each_caller_as_its_rows_say(
    matrix: Matrix, root: tuple[str, str]
) -> None:
    rows = GRAPHQL.get(root)
    assert rows, f"{root[0]} {root[1]} has no row in the authorization matrix"
    for row in rows:
        seen = await _graphql_row(matrix, root[1], root[0] == "mutation", row)
        assert _differences(seen, row.expect) == {}, row.document


# --- node(id:) rows: each kind of object, as the fields that reach it show it ----------------

ONLY_OWNER = Expect(
    G_SEEN_BY_MEMBERS.outcomes
    | dict.fromkeys((*USERS, KEY_HERE, KEY_ELSEWHERE), NULL)
    | {OWNER: OK}
)
NODES: dict[str, Expect] = {
    "user": G_SEEN_BY_MEMBERS,
    "organization": G_SEEN_BY_MEMBERS,
    "member": G_SEEN_BY_MEMBERS,
    # The member's own usage, and the organization's managers'.
    "usage in the organization": G_SEEN_BY_MEMBERS,
    # `User.usages` refuses an organization's key: so does node(id:).
    "personal usage": ONLY_OWNER,
    "invite": G_SEEN_BY_MANAGERS,
    "personal api key": ONLY_OWNER.but(owner=NULL, member=OK),
    # The owner's key of the organization: theirs, and listed to the organization's members.
    "organization api key": G_SEEN_BY_MEMBERS,
    "organization payment": G_SEEN_BY_MANAGERS,
    "personal payment": ONLY_OWNER,
    "plan": G_ANY_USER,
    "organization subscription": G_SEEN_BY_MEMBERS,
}
NODE_PREFIXES = {
    "user": "usr",
    "organization": "org",
    "member": "mbr",
    "usage in the organization": "usg",
    "personal usage": "usg",
    "invite": "inv",
    "personal api key": "key",
    "organization api key": "key",
    "organization payment": "pay",
    "personal payment": "pay",
    "plan": "pln",
    "organization subscription": "sub",
}


def test_every_node_type_has_a_row() -> None:
    assert set(NODE_TYPES) - set(NODE_PREFIXES.values()) == set(), "node types without a row"
    assert set(NODES) == set(NODE_PREFIXES)


@pytest.mark.parametrize("name", sorted(NODES))
async def test_node_shows_each_caller_what_the_fields_reaching_it_show(
    matrix: Matrix, name: str
) -> None:
    world = matrix.world
    node_id = world.nodes[name]
    assert node_id.startswith(NODE_PREFIXES[name] + "-")
    for root, document, variables in (
        ("node", "query($id: ID!) { node(id: $id) { id } }", {"id": node_id}),
        ("nodes", "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [node_id]}),
    ):
        row = Gql(document, NODES[name], _fixed(variables))
        seen = await _graphql_row(matrix, root, False, row)
        assert _differences(seen, row.expect) == {}, root


# --- nesting: whatever path a query takes, it shows nothing the caller may not see -----------

ID = re.compile(r"^[a-z]{3}-[0-9A-HJKMNP-TV-Z]{26}$")


def _deep(type_name: str, depth: int) -> str:
    """Every field of the type that needs no argument, down `depth` object levels (a
    connection's `nodes` count as the level of the field; pages of 3): a new field is
    selected here without anyone writing a row for it."""
    found = SCHEMA.get_type(type_name)
    assert isinstance(found, graphql.GraphQLObjectType | graphql.GraphQLInterfaceType)
    parts = []
    for name, field_ in found.fields.items():
        required = [
            a
            for a in field_.args.values()
            if graphql.is_non_null_type(a.type)
            and (a.ast_node is None or a.ast_node.default_value is None)
        ]
        if required or name in ("edges", "pageInfo"):
            continue
        inner = graphql.get_named_type(field_.type)
        if not isinstance(inner, graphql.GraphQLObjectType | graphql.GraphQLInterfaceType):
            parts.append(name)
            continue
        level = depth if inner.name.endswith("Connection") else depth - 1
        if level < 0:
            continue
        args = "(first: 3)" if "first" in field_.args else ""
        sub = _deep(inner.name, level)
        if sub:
            parts.append(f"{name}{args} {{ {sub} }}")
    return " ".join(parts)


def _visible_ids(world: World, caller: str) -> set[str]:
    """The seeded ids the caller may see anywhere: their organizations and the people in
    them, the organizations' things by role, their own personal things (not through an
    organization's key)."""
    here, elsewhere = world.organizations["here"], world.organizations["elsewhere"]
    team = {world.user_ids[n] for n in (OWNER, ADMIN, MEMBER)}
    managers_of_here = {
        here,
        world.org_payment_id,
        world.invite_id,
        world.nodes["usage in the organization"],
        world.spare_key[KEY_HERE],
        world.member_id,
        world.nodes["organization subscription"],
    } | team
    members_of_here = managers_of_here - {world.org_payment_id, world.invite_id}
    visible: dict[str, set[str]] = {
        MEMBER: members_of_here | {world.personal_payment[MEMBER], world.spare_key[MEMBER]},
        ADMIN: managers_of_here | {world.personal_payment[ADMIN], world.spare_key[ADMIN]},
        OWNER: managers_of_here
        | {elsewhere, world.spare_key[KEY_ELSEWHERE], world.personal_payment[OWNER]}
        | {world.nodes["personal usage"], world.spare_key[OWNER]},
        KEY_HERE: managers_of_here,
        KEY_ELSEWHERE: {elsewhere, world.user_ids[OWNER], world.spare_key[KEY_ELSEWHERE]},
        OUTSIDER: {
            world.organizations["outsider's"],
            world.user_ids[OUTSIDER],
            world.personal_payment[OUTSIDER],
            world.spare_key[OUTSIDER],
        },
    }
    return visible.get(caller, set())


def _seeded_ids(world: World) -> set[str]:
    return (
        set(world.organizations.values())
        | set(world.user_ids.values())
        | set(world.nodes.values())
        | set(world.personal_payment.values())
        | set(world.spare_key.values())
        | {world.org_payment_id, world.invite_id, world.member_id}
    ) - {world.plan_id}


def _ids_in(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(_ids_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_ids_in(v) for v in value)) if value else set()
    return {value} if isinstance(value, str) and ID.match(value) else set()


def _through_nodes(type_name: str, depth: int) -> Callable[[World], tuple[str, dict[str, Any]]]:
    """Every seeded id through `nodes(ids:)`, read as `type_name` down `depth` levels."""

    def build(world: World) -> tuple[str, dict[str, Any]]:
        selection = _deep(type_name, depth)
        document = (
            f"query($ids: [ID!]!) {{ nodes(ids: $ids) {{ ... on {type_name} {{ {selection} }} }} }}"
        )
        return document, {"ids": sorted(_seeded_ids(world))}

    return build


NESTED: dict[str, Callable[[World], tuple[str, dict[str, Any]]]] = {
    "viewer": lambda w: (f"{{ viewer {{ {_deep('User', 3)} }} }}", {}),
    # Every type `node(id:)` returns (enumerated from the schema), with all it leads to.
    **{
        t.name: _through_nodes(t.name, 3 if t.name in ("User", "Organization") else 2)
        for t in SCHEMA.get_possible_types(SCHEMA.get_type("Node"))  # type: ignore[arg-type]
    },
}


@pytest.mark.parametrize("root", sorted(NESTED))
async def test_nested_paths_show_each_caller_only_what_they_may_see(
    matrix: Matrix, root: str
) -> None:
    world = matrix.world
    document, variables = NESTED[root](world)
    seeded = _seeded_ids(world)
    for caller in CALLERS:
        response = await matrix.call(
            world, caller, "POST", "/graphql", {"query": document, "variables": variables}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        codes = {e["extensions"]["code"] for e in body.get("errors", [])}
        # Neither a failure nor a refusal of the whole document (which would see nothing).
        assert not codes & {"INTERNAL_SERVER_ERROR", "QUERY_TOO_COMPLEX", "QUERY_TOO_DEEP"}
        seen = _ids_in(body.get("data")) & seeded
        assert seen - _visible_ids(world, caller) == set(), caller
        # The query does reach things (plans belong to no one).
        if caller == KEY_HERE and root != "Plan":
            assert seen, root
        if root == "viewer" and caller in (MEMBER, KEY_HERE, OUTSIDER):
            assert len(seen) > 3, caller
