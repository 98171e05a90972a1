"""The OpenAPI 3.1 document: valid, complete, and true to what the routes really answer."""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

import pytest
from openapi_spec_validator import validate as validate_openapi

from gateway.db import models
from gateway.ids import new_id
from gateway.rest.framework import Endpoint
from gateway.rest.routes import ENDPOINTS
from tests.billing.helpers import plan_row
from tests.conftest import Client, Env
from tests.rest.helpers import fetch_document, response_schema, validator_for

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


# --- the document ---------------------------------------------------------------------------


async def test_openapi_document_is_valid_openapi_3_1(env: Env) -> None:
    document = await fetch_document(env)
    assert document["openapi"].startswith("3.1")
    validate_openapi(document)


async def test_openapi_needs_no_token_and_is_not_enveloped(env: Env) -> None:
    document = await fetch_document(env)
    assert "success" not in document
    operation = document["paths"]["/openapi.json"]["get"]
    assert operation["security"] == []


async def test_every_route_of_the_table_is_documented_with_its_summary(env: Env) -> None:
    document = await fetch_document(env)
    for endpoint in ENDPOINTS:
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        assert operation["summary"] == endpoint.summary
        assert str(endpoint.status) in operation["responses"]
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }
    assert documented == {(e.method, e.path) for e in ENDPOINTS} | {("GET", "/openapi.json")}


async def test_operation_ids_are_unique(env: Env) -> None:
    document = await fetch_document(env)
    ids = [
        operation["operationId"]
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in METHODS
    ]
    assert len(ids) == len(set(ids))


async def test_path_parameters_are_declared_as_required_strings(env: Env) -> None:
    document = await fetch_document(env)
    for endpoint in ENDPOINTS:
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        declared = [p for p in operation.get("parameters", []) if p["in"] == "path"]
        assert [p["name"] for p in declared] == endpoint.path_params
        assert all(p["required"] and p["schema"] == {"type": "string"} for p in declared)


async def test_bearer_auth_is_the_security_scheme(env: Env) -> None:
    document = await fetch_document(env)
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert document["security"] == [{"bearerAuth": []}]


@pytest.mark.parametrize(
    "path", ["/api-keys", "/users/{id}/promotions", "/organizations/{orgId}/promotions"]
)
async def test_list_routes_document_limit_and_cursor_query_parameters(env: Env, path: str) -> None:
    document = await fetch_document(env)
    parameters = [p for p in document["paths"][path]["get"]["parameters"] if p["in"] == "query"]
    assert {p["name"]: p["schema"] for p in parameters} == {
        "limit": {"type": "integer", "minimum": 1, "maximum": 100},
        "cursor": {"type": "string", "maxLength": 200},
    }


async def test_api_key_schemas_are_camel_case_and_secret_only_on_create(env: Env) -> None:
    document = await fetch_document(env)
    schemas = document["components"]["schemas"]
    assert set(schemas["ApiKeyOut"]["properties"]) == {
        "id",
        "name",
        "prefix",
        "organizationId",
        "createdAt",
        "lastUsedAt",
        "expiresAt",
    }
    assert "key" in schemas["CreatedApiKeyOut"]["required"]
    create = document["paths"]["/api-keys"]["post"]
    assert create["requestBody"]["required"] is True
    assert "201" in create["responses"] and "415" in create["responses"]
    assert "content" not in document["paths"]["/api-keys/{keyId}"]["delete"]["responses"]["204"]


async def test_every_property_name_on_the_wire_is_camel_case(env: Env) -> None:
    document = await fetch_document(env)
    offenders = [
        f"{name}.{prop}"
        for name, schema in document["components"]["schemas"].items()
        for prop in schema.get("properties", {})
        if "_" in prop
    ]
    assert offenders == []


async def test_errors_are_documented_as_the_envelope(env: Env) -> None:
    document = await fetch_document(env)
    operation = document["paths"]["/users/me"]["get"]
    assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorEnvelope"
    }
    envelope = document["components"]["schemas"]["ErrorEnvelope"]
    validator_for(document, envelope).validate({"success": False, "error": "Nope"})


# --- real responses against the document ----------------------------------------------------

SAMPLE_BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/users/me"): {"displayName": "Smoke"},
    ("PUT", "/users/active-account"): {"organizationId": None},
    ("POST", "/api-keys"): {"name": "smoke"},
    ("POST", "/organizations"): {"name": "Smoke Org"},
    ("PUT", "/organizations/{orgId}"): {"name": "Renamed"},
    ("DELETE", "/organizations/{orgId}/members"): {"memberIds": []},
    ("PUT", "/organizations/{orgId}/members/{memberId}/role"): {"role": "owner"},
    ("POST", "/organizations/{orgId}/invites"): {
        "invites": [{"email": "smoke@example.com", "role": "member"}]
    },
    ("POST", "/invites/accept"): {"token": "not-a-token"},
    ("POST", "/users/credits/checkout"): {"amountCents": 1000},
    ("POST", "/organizations/{orgId}/credits/checkout"): {"amountCents": 1000},
    ("POST", "/users/{id}/credits/purchase"): {"amountCents": 1000},
    ("POST", "/organizations/{orgId}/credits/purchase"): {"amountCents": 1000},
    ("PUT", "/users/{id}/auto-top-up"): {"enabled": False, "threshold": 0, "amountCents": 1000},
    ("PUT", "/organizations/{orgId}/auto-top-up"): {
        "enabled": False,
        "threshold": 0,
        "amountCents": 1000,
    },
    ("POST", "/users/{id}/payment-method/setup-session"): {},
    ("POST", "/organizations/{orgId}/payment-method/setup-session"): {},
    ("PUT", "/organizations/{orgId}/plan/seats"): {"seats": 1},
    ("POST", "/internal/usages"): {"usages": []},
}


async def smoke_world(env: Env) -> tuple[Client, dict[str, str]]:
    """A fresh owner with an organization, a plan and a key: values for every path parameter."""
    owner = await env.user()
    org_id = await env.organization(owner)
    async with env.sessions() as session:
        name = f"teams-{new_id('pln')[-8:].lower()}"
        plan = plan_row(name, "Teams", "teams", 2000, features=["Everything"])
        session.add(plan)
        await session.commit()
        plan_id = plan.id
    member_id = await env.scalar(
        models.Member.__table__.select()
        .with_only_columns(models.Member.id)
        .where(models.Member.user_id == owner.user_id)
    )
    key_id = (await owner.get("/api-keys")).json()["data"]["items"][0]["id"]
    return owner, {
        "id": owner.user_id or "",
        "orgId": org_id,
        "memberId": member_id,
        "keyId": key_id,
        "planId": plan_id,
        "paymentId": new_id("pay"),
        "inviteId": new_id("inv"),
    }


def concrete_path(endpoint: Endpoint, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], endpoint.path)


async def test_real_responses_of_every_route_match_the_document(env: Env) -> None:
    """Smoke pass over the whole route table: each route's actual answer must be what the
    document says (success shape for 2xx, the error envelope otherwise); 501s are listed."""
    document = await fetch_document(env)
    not_implemented: list[str] = []
    checked_2xx: list[str] = []
    failures: list[str] = []
    for endpoint in ENDPOINTS:
        owner, values = await smoke_world(env)
        caller = (
            env.client(env.settings.service_token.get_secret_value())
            if (endpoint.auth == "service" and env.settings.service_token)
            else owner
        )
        body = SAMPLE_BODIES.get((endpoint.method, endpoint.path))
        if body is None and endpoint.body is not None:
            body = {}
        label = f"{endpoint.method} {endpoint.path}"
        response = await caller.request(endpoint.method, concrete_path(endpoint, values), json=body)
        status = response.status_code
        if status == 501:
            not_implemented.append(label)
            continue
        if status >= 500:
            failures.append(f"{label}: {status} {response.text[:200]}")
            continue
        if 200 <= status < 300:
            if status != endpoint.status:
                failures.append(f"{label}: answered {status}, declared {endpoint.status}")
                continue
            checked_2xx.append(label)
        schema = response_schema(document, endpoint, status)
        if schema is None:
            if response.content != b"":
                failures.append(f"{label}: {status} must have an empty body")
            continue
        errors = sorted(
            validator_for(document, schema).iter_errors(response.json()), key=lambda e: e.path
        )
        if errors:
            failures.append(
                f"{label}: {status} does not match the document: "
                + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:3])
            )
    if not_implemented:
        warnings.warn(
            "routes answering 501 (not checked): " + ", ".join(not_implemented), stacklevel=1
        )
    assert failures == []
    for expected in (
        "GET /users/me",
        "GET /api-keys",
        "POST /api-keys",
        "DELETE /api-keys/{keyId}",
    ):
        assert expected in checked_2xx


async def test_a_handler_without_models_is_still_documented() -> None:
    from gateway.rest.openapi import build_openapi

    async def bare(call: Any) -> None:
        return None

    document = build_openapi([Endpoint("GET", "/things/{thingId}", bare, "Things")])
    validate_openapi(document)
    operation = document["paths"]["/things/{thingId}"]["get"]
    assert operation["summary"] == "Things"
    success = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert success["properties"]["data"] == {}


@pytest.mark.settings(checkout_min_cents=700, max_invites_per_request=7)
async def test_the_document_states_the_limits_the_server_enforces(env: Env) -> None:
    document = await fetch_document(env)
    schemas = document["components"]["schemas"]
    top_up = schemas["AutoTopUpIn"]["properties"]
    assert top_up["amountCents"]["minimum"] == 700
    assert top_up["threshold"] == {**top_up["threshold"], "minimum": 0, "maximum": 2**63 - 1}
    assert schemas["SendInvitesIn"]["properties"]["invites"]["maxItems"] == 7
    assert schemas["InviteeIn"]["properties"]["role"]["enum"] == ["owner", "admin", "member"]
    assert schemas["InviteeIn"]["properties"]["email"]["maxLength"] == 320
    expires = schemas["CreateApiKeyIn"]["properties"]["expiresAt"]["anyOf"][0]
    assert expires["format"] == "date-time" and expires["pattern"].startswith("^(19")
    assert "x-gateway-settings" not in json.dumps(document)
