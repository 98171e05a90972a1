"""GraphQL shares the REST rate limit: one budget per user across both, 429 with Retry-After."""

from __future__ import annotations

import pytest

from gateway.ratelimit import RateLimiter
from tests.conftest import REDIS_URL, Env
from tests.rest.helpers import FakeRedis

# Each test's requests fall in one rate-limit window (a wall-clock minute).
pytestmark = pytest.mark.usefixtures("one_rate_window")

VIEWER = {"query": "{ viewer { id } }"}


async def test_graphql_over_the_limit_is_429_with_a_coded_error(env: Env) -> None:
    alice = await env.user()
    env.state.rate_limiter = RateLimiter(FakeRedis(), per_minute=2)
    headers = {"Authorization": f"Bearer {alice.token}"}
    statuses = [
        (await env.http.post("/graphql", json=VIEWER, headers=headers)).status_code
        for _ in range(2)
    ]
    refused = await env.http.post("/graphql", json=VIEWER, headers=headers)
    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert refused.json() == {
        "errors": [
            {
                "message": "Too many requests: slow down and retry later",
                "extensions": {"code": "RATE_LIMITED"},
            }
        ]
    }
    assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_graphql_counts_against_the_users_budget(env: Env) -> None:
    alice = await env.user()
    limiter = RateLimiter(FakeRedis(), per_minute=2)
    env.state.rate_limiter = limiter
    headers = {"Authorization": f"Bearer {alice.token}"}
    await env.http.post("/graphql", json=VIEWER, headers=headers)
    await env.http.post("/graphql", json=VIEWER, headers=headers)
    assert limiter.redis.counts and max(limiter.redis.counts.values()) == 2
    key = next(iter(limiter.redis.counts))
    assert key.startswith(f"gw:rl:user:{alice.user_id}:")


@pytest.mark.skipif(not REDIS_URL, reason="GATEWAY_TEST_REDIS_URL not set")
@pytest.mark.settings(redis_url=REDIS_URL, rate_limit_per_minute=3)
async def test_rest_and_graphql_share_the_redis_budget(env: Env) -> None:
    alice = await env.user()
    assert (await alice.get("/users/me")).status_code == 200
    assert (await alice.get("/users/me")).status_code == 200
    body = await env.http.post(
        "/graphql", json=VIEWER, headers={"Authorization": f"Bearer {alice.token}"}
    )
    assert body.status_code == 200
    assert (await alice.get("/users/me")).status_code == 429
    again = await env.http.post(
        "/graphql", json=VIEWER, headers={"Authorization": f"Bearer {alice.token}"}
    )
    assert again.status_code == 429
