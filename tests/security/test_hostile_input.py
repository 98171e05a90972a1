"""Hostile input is a 400 with the envelope (REST) or a coded GraphQL error, never a 500.

Each test is one input that once reached the database or date arithmetic unchecked. The
checks live in shared places (`gateway/inputs.py`, the REST wire models and router, the GraphQL
scalars and execution context), so the tests name behaviours, not the fields that found them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Annotated, Any, get_args, get_origin

import pytest
from pydantic import BaseModel
from sqlalchemy import func, select

from gateway.db import models
from gateway.rest.routes import ENDPOINTS
from gateway.rest.wire import WireIn
from tests.api_keys.helpers import make_jwt
from tests.conftest import Client, Env

INT64_MAX = 2**63 - 1


def refused(response: Any, status: int = 400) -> str:
    """The error message of an envelope failure with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert body["success"] is False and isinstance(body["error"], str), body
    message: str = body["error"]
    return message


def coded(body: dict[str, Any]) -> list[str]:
    """The codes of a GraphQL response's errors; never a masked internal error."""
    errors = body.get("errors") or []
    codes = [e.get("extensions", {}).get("code") for e in errors]
    assert errors and None not in codes and "INTERNAL_SERVER_ERROR" not in codes, body
    return codes


async def owner_and_org(env: Env) -> tuple[Client, str]:
    owner = await env.user()
    return owner, await env.organization(owner)


# --- integers: what the column holds, and the real bound in the message -------------------------


async def test_rest_auto_top_up_threshold_beyond_64_bits_is_400(env: Env) -> None:
    alice = await env.user()
    body = {"enabled": False, "threshold": 2**63, "amountCents": 1000}
    message = refused(await alice.put(f"/users/{alice.user_id}/auto-top-up", json=body))
    assert "threshold" in message and str(INT64_MAX) in message


async def test_graphql_auto_top_up_threshold_beyond_64_bits_is_a_coded_error(env: Env) -> None:
    alice = await env.user()
    body = await alice.gql(
        "mutation($t: BigInt!) { updateAutoTopUp(input: {enabled: false, threshold: $t,"
        " amountCents: 1000}) { errors { code } } }",
        {"t": 2**63},
    )
    coded(body)
    literal = await alice.gql(
        "mutation { updateAutoTopUp(input: {enabled: false, threshold: 9223372036854775808,"
        " amountCents: 1000}) { errors { code } } }"
    )
    coded(literal)


@pytest.mark.parametrize("field", ["promptTokens", "credits"])
async def test_usage_count_out_of_range_names_the_real_bound(env: Env, field: str) -> None:
    alice = await env.user()
    service = env.client(env.settings.service_token.get_secret_value())  # type: ignore[union-attr]
    event = usage_event(alice.user_id or "", **{field: 2**63})
    message = refused(await service.post("/internal/usages", json=event))
    assert field in message and "zero or more" not in message
    assert str(2**62 - 1) in message or str(2**62) in message


def usage_event(user_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "generationId": f"gen_{time.time_ns()}",
        "provider": "openai",
        "model": "gpt",
        "modelType": "chat",
        "promptTokens": 1,
        "completionTokens": 1,
        "costUsd": 0.001,
        "credits": 10,
        "userId": user_id,
        **overrides,
    }


# --- dates: a range that all later arithmetic survives ------------------------------------------


@pytest.mark.parametrize("route", ["metrics", "usages"])
@pytest.mark.parametrize("query", ["to=0001-01-01", "from=9999-12-30", "from=0001-01-01"])
async def test_period_at_the_ends_of_the_calendar_is_400(env: Env, route: str, query: str) -> None:
    owner, org_id = await owner_and_org(env)
    message = refused(await owner.get(f"/organizations/{org_id}/{route}?{query}"))
    assert query.split("=")[0] in message


async def test_graphql_period_at_the_ends_of_the_calendar_is_a_coded_error(env: Env) -> None:
    owner, org_id = await owner_and_org(env)
    body = await owner.gql(
        "query($id: ID!, $to: DateTime) { organization(id: $id) {"
        " metrics(to: $to) { requests } } }",
        {"id": org_id, "to": "0001-01-01T00:00:00Z"},
    )
    coded(body)


async def test_rest_timestamp_overflowing_utc_is_400(env: Env) -> None:
    alice = await env.user()
    body = {"name": "far", "expiresAt": "9999-12-31T23:59:59-14:00"}
    message = refused(await alice.post("/api-keys", json=body))
    assert "expiresAt" in message


async def test_graphql_timestamp_overflowing_utc_is_a_coded_error(env: Env) -> None:
    alice = await env.user()
    body = await alice.gql(
        'mutation($at: DateTime) { createApiKey(input: {name: "far", expiresAt: $at})'
        " { errors { code } } }",
        {"at": "9999-12-31T23:59:59-14:00"},
    )
    coded(body)


# --- NUL characters: refused in one place for every string ------------------------------------


async def test_rest_nul_in_a_body_string_is_400(env: Env) -> None:
    alice = await env.user()
    message = refused(await alice.post("/organizations", json={"name": "Ac\u0000me"}))
    assert "NUL" in message
    assert await env.scalar(select(func.count()).select_from(models.Organization)) == 0


async def test_rest_nul_in_a_path_parameter_is_400(env: Env) -> None:
    owner, _ = await owner_and_org(env)
    assert "NUL" in refused(await owner.get("/organizations/org-%00/balance"))


async def test_rest_nul_in_a_query_parameter_is_400(env: Env) -> None:
    owner, org_id = await owner_and_org(env)
    assert "NUL" in refused(await owner.get(f"/organizations/{org_id}/members?cursor=%00"))


async def test_service_nul_in_a_generation_id_is_400(env: Env) -> None:
    alice = await env.user()
    service = env.client(env.settings.service_token.get_secret_value())  # type: ignore[union-attr]
    event = usage_event(alice.user_id or "", generationId="gen_\u0000")
    assert "NUL" in refused(await service.post("/internal/usages", json=event))


async def test_graphql_nul_in_a_variable_is_bad_user_input(env: Env) -> None:
    alice = await env.user()
    body = await alice.gql(
        "mutation($name: String!) { createOrganization(input: {name: $name}) { errors { code } } }",
        {"name": "Ac\u0000me"},
    )
    assert coded(body) == ["BAD_USER_INPUT"]
    assert await env.scalar(select(func.count()).select_from(models.Organization)) == 0


async def test_graphql_nul_in_a_literal_is_bad_user_input(env: Env) -> None:
    alice = await env.user()
    body = await alice.gql('query { user(id: "usr-\\u0000") { id } }')
    assert coded(body) == ["BAD_USER_INPUT"]


# --- strings longer than their column ---------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"email": "a" * 10_000 + "@example.com"},
        {"sub": "s" * 10_000},
        {"email": "nul\u0000@example.com"},
        {"sub": "nul\u0000"},
    ],
    ids=["long-email", "long-sub", "nul-email", "nul-sub"],
)
async def test_jwt_claims_beyond_the_columns_are_401(env: Env, claims: dict[str, str]) -> None:
    response = await env.client(make_jwt(env, **claims)).get("/users/me")
    refused(response, 401)
    assert await env.scalar(select(func.count()).select_from(models.User)) == 0


async def test_api_key_holding_nul_is_401(env: Env) -> None:
    refused(await env.client("gwk_ab\u0000cd_secret").get("/users/me"), 401)


async def test_jwt_long_name_is_cut_to_the_column(env: Env) -> None:
    response = await env.client(make_jwt(env, name="n" * 10_000)).get("/users/me")
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]["displayName"]) == 200


# --- webhooks ---------------------------------------------------------------------------------

SECRET = "whsec_test_secret"


def signed(payload: str) -> dict[str, str]:
    t = int(time.time())
    mac = hmac.new(SECRET.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "Stripe-Signature": f"t={t},v1={mac}"}


@pytest.mark.settings(stripe_webhook_secret=SECRET)
@pytest.mark.parametrize(
    "payload",
    [
        [],
        "event",
        {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": "pi_1"}},
        {"id": "evt_2", "type": "payment_intent.succeeded", "data": []},
        {"id": "evt_3", "type": "payment_intent.succeeded", "data": {"object": [1]}},
        {"id": "e" * 300, "type": "payment_intent.succeeded", "data": {"object": {}}},
        {"id": "evt_\u0000", "type": "payment_intent.succeeded", "data": {"object": {}}},
        {"id": "evt_4", "type": "x" * 300, "data": {"object": {}}},
    ],
    ids=[
        "list",
        "string",
        "object-string",
        "data-list",
        "object-list",
        "long-id",
        "nul-id",
        "long-type",
    ],
)
async def test_signed_webhook_of_the_wrong_shape_is_400(env: Env, payload: Any) -> None:
    text = json.dumps(payload)
    response = await env.http.post("/webhooks/stripe", content=text, headers=signed(text))
    refused(response, 400)
    assert await env.scalar(select(func.count()).select_from(models.WebhookEvent)) == 0


# --- routing and the wire's types -------------------------------------------------------------


async def test_newline_in_a_path_parameter_is_an_envelope_404(env: Env) -> None:
    owner, _ = await owner_and_org(env)
    refused(await owner.get("/organizations/org-1%0A/balance"), 404)


async def test_unknown_path_outside_the_api_is_an_envelope_404(env: Env) -> None:
    refused(await env.http.get("/nowhere"), 404)


async def test_wrong_method_outside_the_api_is_an_envelope_405(env: Env) -> None:
    refused(await env.http.delete("/healthz"), 405)


async def test_a_literal_segment_is_not_read_as_an_id(env: Env) -> None:
    owner, org_id = await owner_and_org(env)
    response = await owner.delete(f"/organizations/{org_id}/invites/count")
    refused(response, 405)
    assert response.headers["allow"] == "GET, HEAD"


async def test_bad_cursor_names_the_parameter_sent(env: Env) -> None:
    owner, org_id = await owner_and_org(env)
    message = refused(await owner.get(f"/organizations/{org_id}/members?cursor=nonsense"))
    assert "cursor" in message and "before" not in message


@pytest.mark.parametrize("value", ["true", 1, 0])
async def test_rest_booleans_are_strict(env: Env, value: Any) -> None:
    owner, org_id = await owner_and_org(env)
    body = {"remoteConfigEnabled": value}
    message = refused(await owner.put(f"/organizations/{org_id}", json=body))
    assert "remoteConfigEnabled" in message


@pytest.mark.parametrize("value", ["1000", 1000.0, True])
async def test_rest_integers_are_strict(env: Env, value: Any) -> None:
    alice = await env.user()
    body = {"enabled": False, "threshold": value, "amountCents": 1000}
    message = refused(await alice.put(f"/users/{alice.user_id}/auto-top-up", json=body))
    assert "threshold" in message


async def test_rest_auto_top_up_below_the_checkout_minimum_is_400(env: Env) -> None:
    alice = await env.user()
    body = {"enabled": False, "threshold": 0, "amountCents": 1}
    message = refused(await alice.put(f"/users/{alice.user_id}/auto-top-up", json=body))
    assert "amountCents" in message and str(env.settings.checkout_min_cents) in message


async def test_graphql_auto_top_up_below_the_checkout_minimum_is_a_typed_error(env: Env) -> None:
    alice = await env.user()
    data = await alice.gql_data(
        "mutation { updateAutoTopUp(input: {enabled: false, threshold: 0, amountCents: 1})"
        " { errors { code field } } }"
    )
    assert data["updateAutoTopUp"]["errors"] == [
        {"code": "VALIDATION_FAILED", "field": "amountCents"}
    ]


# --- logging ----------------------------------------------------------------------------------


async def test_graphql_client_mistakes_log_no_traceback(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await env.user()
    caplog.set_level(logging.DEBUG)
    domain = await alice.gql("query { viewer { usages(first: 1000) { totalCount } } }")
    assert coded(domain) == ["VALIDATION_FAILED"]
    await alice.gql("query { nonsense }")
    await alice.gql('query { user(id: "usr-\\u0000") { id } }')
    records = [
        r
        for r in caplog.records
        if r.name.startswith(("strawberry", "gateway.graphql")) and r.levelno >= logging.INFO
    ]
    assert len(records) == 3, "client mistakes are still logged, once each"
    assert all(r.exc_info is None and r.levelno <= logging.INFO for r in records), [
        (r.name, r.levelname, r.getMessage()) for r in records
    ]


# --- every GraphQL string argument, far longer than any column --------------------------------

LONG = "x" * 10_000
LONG_ID = "org-" + "0" * 10_000
GRAPHQL_LONG_INPUTS = [
    ("updateProfile", {"displayName": LONG}),
    ("updateProfile", {"photoUrl": "https://" + LONG}),
    ("switchActiveAccount", {"organizationId": LONG_ID}),
    ("createOrganization", {"name": LONG}),
    ("updateOrganization", {"organizationId": "{org}", "name": LONG}),
    ("updateOrganization", {"organizationId": LONG_ID, "name": "x"}),
    ("updateRemoteConfig", {"organizationId": "{org}", "value": LONG * 10}),
    ("changeMemberRole", {"organizationId": "{org}", "memberId": LONG_ID, "role": "ADMIN"}),
    ("removeMembers", {"organizationId": "{org}", "memberIds": [LONG_ID]}),
    ("sendInvites", {"organizationId": "{org}", "invites": [{"email": LONG + "@x.io"}]}),
    ("revokeInvite", {"organizationId": "{org}", "inviteId": LONG_ID}),
    ("acceptInvite", {"token": LONG}),
    ("createApiKey", {"name": LONG}),
    ("createApiKey", {"name": "k", "organizationId": LONG_ID}),
    ("deleteApiKey", {"id": LONG_ID}),
    ("startCheckout", {"amountCents": 1000, "successUrl": "https://" + LONG}),
    ("startCheckout", {"amountCents": 1000, "idempotencyKey": LONG}),
    ("purchaseCredits", {"amountCents": 1000, "idempotencyKey": LONG}),
    ("startPaymentMethodSetup", {"returnUrl": "https://" + LONG}),
    ("redeemPromotion", {"code": LONG}),
    ("subscribeToPlan", {"organizationId": "{org}", "planId": LONG_ID, "seats": 1}),
    ("cancelSubscription", {"organizationId": "{org}", "planId": LONG_ID}),
]


@pytest.mark.parametrize(
    ("mutation", "fields"),
    GRAPHQL_LONG_INPUTS,
    ids=[
        f"{m}-{next(iter(f.keys() - {'organizationId'}), 'organizationId')}"
        for m, f in GRAPHQL_LONG_INPUTS
    ],
)
async def test_graphql_strings_longer_than_their_column_are_refused(
    env: Env, mutation: str, fields: dict[str, Any]
) -> None:
    owner, org_id = await owner_and_org(env)
    values = {k: (org_id if v == "{org}" else v) for k, v in fields.items()}
    body = await owner.gql(
        f"mutation($input: {mutation[0].upper()}{mutation[1:]}Input!) "
        f"{{ {mutation}(input: $input) {{ errors {{ code message }} }} }}",
        {"input": values},
    )
    if body.get("errors"):
        coded(body)
    else:
        assert body["data"][mutation]["errors"], body


async def test_graphql_usage_strings_longer_than_their_column_are_refused(env: Env) -> None:
    alice = await env.user()
    service = env.client(env.settings.service_token.get_secret_value())  # type: ignore[union-attr]
    for field in ("generationId", "provider", "model", "modelType", "operation", "userId"):
        event = usage_event(alice.user_id or "", **{field: LONG})
        event.pop("costUsd")
        body = await service.gql(
            "mutation($input: RecordUsageInput!) { recordUsage(input: $input)"
            " { errors { code field } } }",
            {"input": {**event, "costUsd": 0.001}},
        )
        assert body["data"]["recordUsage"]["errors"][0]["code"] == "VALIDATION_FAILED", body


# --- the route table: every input a REST route takes is bounded -------------------------------


def _unbounded(model: type[BaseModel], where: str) -> list[str]:
    """Fields of an input model whose values the database or arithmetic might not hold."""
    found: list[str] = []
    for name, info in model.model_fields.items():
        metadata = list(info.metadata)
        annotation = info.annotation
        args = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
        for arg in args:
            inner = arg
            extra: list[Any] = []
            if get_origin(arg) is Annotated:
                inner, *extra = get_args(arg)
            bounds = metadata + [m for e in extra for m in getattr(e, "metadata", [e])]
            if get_origin(inner) is list:
                (item,) = get_args(inner)
                if isinstance(item, type) and issubclass(item, BaseModel):
                    found += _unbounded(item, f"{where}.{name}[]")
                    continue
                inner = item
                if get_origin(item) is Annotated:
                    inner, *more = get_args(item)
                    bounds += [m for e in more for m in getattr(e, "metadata", [e])]
            if inner is str and not any(getattr(b, "max_length", None) for b in bounds):
                found.append(f"{where}.{name}: str without max_length")
            if inner is int:
                low = [getattr(b, "ge", None) for b in bounds if getattr(b, "ge", None) is not None]
                high = [
                    getattr(b, "le", getattr(b, "lt", None))
                    for b in bounds
                    if getattr(b, "le", getattr(b, "lt", None)) is not None
                ]
                if not low or not high or min(low) < -(2**63) or max(high) > 2**63:
                    found.append(f"{where}.{name}: int without 64-bit bounds")
    return found


def test_every_rest_input_is_strict_and_bounded() -> None:
    problems: list[str] = []
    for endpoint in ENDPOINTS:
        if endpoint.body is not None:
            if not issubclass(endpoint.body, WireIn):
                problems.append(f"{endpoint.path}: body {endpoint.body.__name__} is not WireIn")
            problems += _unbounded(endpoint.body, f"{endpoint.method} {endpoint.path} body")
        if endpoint.query is not None:
            problems += _unbounded(endpoint.query, f"{endpoint.method} {endpoint.path} query")
    assert problems == []
