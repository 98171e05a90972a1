"""Callers without a valid token (anonymous, or refused) are limited per client address, on
REST and GraphQL together: in the process without Redis, shared through Redis with it."""

from __future__ import annotations

import httpx
import pytest

from gateway.app import create_app
from tests.conftest import REDIS_URL, Env
from tests.envelopes import assert_refused

# Each test's requests fall in one rate-limit window (a wall-clock minute).
pytestmark = pytest.mark.usefixtures("one_rate_window")

TYPENAME = {"query": "{ __typename }"}
BAD = {"Authorization": "Bearer gwk_not-a-key"}


@pytest.mark.settings(rate_limit_anonymous_per_minute=3)
async def test_anonymous_callers_are_limited_by_address_across_rest_and_graphql(env: Env) -> None:
    assert (await env.http.post("/graphql", json=TYPENAME)).status_code == 200
    assert (await env.anonymous.get("/openapi.json")).status_code == 200
    assert (await env.http.post("/graphql", json=TYPENAME)).status_code == 200
    refused = await env.http.post("/graphql", json=TYPENAME)
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    rest = await env.anonymous.get("/openapi.json")
    assert_refused(rest, 429, "Too many requests: slow down and retry later")


@pytest.mark.settings(rate_limit_anonymous_per_minute=2)
async def test_refused_tokens_count_by_address(env: Env) -> None:
    statuses = [(await env.anonymous.get("/users/me", headers=BAD)).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
    graphql = await env.http.post("/graphql", json=TYPENAME, headers=BAD)
    assert graphql.status_code == 429


@pytest.mark.settings(rate_limit_anonymous_per_minute=1)
async def test_users_do_not_spend_the_anonymous_budget(env: Env) -> None:
    alice = await env.user()
    for _ in range(3):
        assert (await alice.get("/users/me")).status_code == 200
    assert (await env.anonymous.get("/openapi.json")).status_code == 200


@pytest.mark.settings(rate_limit_anonymous_per_minute=1)
async def test_the_service_token_is_not_limited(env: Env) -> None:
    service = env.client(env.settings.service_token.get_secret_value())  # type: ignore[union-attr]
    for _ in range(3):
        response = await service.post("/internal/usages", json={"events": []})
        assert response.status_code != 429


@pytest.mark.skipif(not REDIS_URL, reason="GATEWAY_TEST_REDIS_URL not set")
@pytest.mark.settings(redis_url=REDIS_URL, rate_limit_anonymous_per_minute=2)
async def test_processes_share_the_anonymous_budget_through_redis(env: Env) -> None:
    # A second app on the same settings stands for a second gateway process.
    other = create_app(env.settings)
    transport = httpx.ASGITransport(app=other, client=("203.0.113.9", 4000))
    mine = httpx.ASGITransport(app=env.app, client=("203.0.113.9", 4001))
    try:
        async with (
            httpx.AsyncClient(transport=mine, base_url="http://gw") as first,
            httpx.AsyncClient(transport=transport, base_url="http://gw") as second,
        ):
            await env.state.rate_limiter.redis.delete(  # a clean window for this address
                *[k async for k in env.state.rate_limiter.redis.scan_iter("gw:rl:ip:203.0.113.9:*")]
                or ["-"]
            )
            assert (await first.post("/graphql", json=TYPENAME)).status_code == 200
            assert (await second.post("/graphql", json=TYPENAME)).status_code == 200
            assert (await first.post("/graphql", json=TYPENAME)).status_code == 429
            assert (await second.get("/api/v1/openapi.json")).status_code == 429
    finally:
        await other.state.gateway.close()
