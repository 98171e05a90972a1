"""Idempotency-Key on money-moving POSTs: replays return the first response and move no money."""

from __future__ import annotations

from sqlalchemy import func, select

from gateway.db import models
from tests.billing.helpers import rest_balance
from tests.conftest import Env


async def payments_count(env: Env) -> int:
    return int(await env.scalar(select(func.count()).select_from(models.Payment)))


async def test_replayed_checkout_returns_first_response_and_moves_no_money(env: Env) -> None:
    alice = await env.user()
    headers = {"Idempotency-Key": "checkout-1"}
    first = await alice.post("/users/credits/checkout", json={"amountCents": 1000}, headers=headers)
    again = await alice.post("/users/credits/checkout", json={"amountCents": 1000}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await payments_count(env) == 1
    balance = await rest_balance(alice)
    assert balance == 1000 * 10_000


async def test_same_key_with_different_body_is_409(env: Env) -> None:
    alice = await env.user()
    headers = {"Idempotency-Key": "k"}
    await alice.post("/users/credits/checkout", json={"amountCents": 1000}, headers=headers)
    other = await alice.post("/users/credits/checkout", json={"amountCents": 2000}, headers=headers)
    assert other.status_code == 409
    assert "different request body" in other.json()["error"]
    assert await payments_count(env) == 1


async def test_replayed_purchase_charges_once(env: Env) -> None:
    alice = await env.user()
    base = f"/users/{alice.user_id}"
    await alice.post(f"{base}/payment-method/setup-session", json={})
    headers = {"Idempotency-Key": "buy-1"}
    first = await alice.post(
        f"{base}/credits/purchase", json={"amountCents": 1500}, headers=headers
    )
    again = await alice.post(
        f"{base}/credits/purchase", json={"amountCents": 1500}, headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert await payments_count(env) == 1
    entries = await env.all(select(models.LedgerEntry))
    assert len(entries) == 1


async def test_keys_are_scoped_to_the_caller(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    headers = {"Idempotency-Key": "shared"}
    a = await alice.post("/users/credits/checkout", json={"amountCents": 1000}, headers=headers)
    b = await bob.post("/users/credits/checkout", json={"amountCents": 1000}, headers=headers)
    assert a.status_code == b.status_code == 201
    assert a.json()["data"]["paymentId"] != b.json()["data"]["paymentId"]


async def test_failed_request_releases_the_key(env: Env) -> None:
    alice = await env.user()
    base = f"/users/{alice.user_id}"
    headers = {"Idempotency-Key": "retry-me"}
    refused = await alice.post(
        f"{base}/credits/purchase", json={"amountCents": 1500}, headers=headers
    )
    assert refused.status_code == 422
    await alice.post(f"{base}/payment-method/setup-session", json={})
    retried = await alice.post(
        f"{base}/credits/purchase", json={"amountCents": 1500}, headers=headers
    )
    assert retried.status_code == 201
    assert retried.json()["data"]["status"] == "succeeded"


async def test_without_key_each_request_is_new(env: Env) -> None:
    alice = await env.user()
    for _ in range(2):
        await alice.post("/users/credits/checkout", json={"amountCents": 1000})
    assert await payments_count(env) == 2


async def test_overlong_key_is_400(env: Env) -> None:
    alice = await env.user()
    response = await alice.post(
        "/users/credits/checkout",
        json={"amountCents": 1000},
        headers={"Idempotency-Key": "x" * 300},
    )
    assert response.status_code == 400
    assert await payments_count(env) == 0


async def test_an_amount_beyond_64_bits_with_a_key_is_refused_not_a_server_error(
    env: Env,
) -> None:
    alice = await env.user()
    response = await alice.post(
        "/users/credits/checkout",
        json={"amountCents": 2**70},
        headers={"Idempotency-Key": "huge"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["success"] is False
    assert await payments_count(env) == 0
