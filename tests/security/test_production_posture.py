"""Production shows anonymous callers nothing of the schema or the operators' numbers unless
settings say so: no introspection, no suggestions, no GraphiQL, no open /metrics."""

from __future__ import annotations

import pytest

from tests.conftest import Env

PRODUCTION = {"environment": "production", "allow_sandbox_in_production": True}
INTROSPECTION = "{ __schema { queryType { name } } }"
HTML = {"Accept": "text/html"}


@pytest.mark.settings(**PRODUCTION)
async def test_production_refuses_introspection(env: Env) -> None:
    body = await env.anonymous.gql(INTROSPECTION)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "introspection" in body["errors"][0]["message"]


@pytest.mark.settings(**PRODUCTION)
async def test_production_answers_typename(env: Env) -> None:
    assert await env.anonymous.gql_data("{ __typename }") == {"__typename": "Query"}


@pytest.mark.settings(**PRODUCTION)
async def test_production_suggests_no_field_names(env: Env) -> None:
    body = await env.anonymous.gql("{ viewr { id } }")
    (error,) = body["errors"]
    assert error["message"] == "Cannot query field 'viewr' on type 'Query'."


async def test_development_suggests_field_names(env: Env) -> None:
    body = await env.anonymous.gql("{ viewr { id } }")
    assert "Did you mean 'viewer'" in body["errors"][0]["message"]


@pytest.mark.settings(**PRODUCTION)
async def test_production_serves_no_graphiql(env: Env) -> None:
    response = await env.http.get("/graphql", headers=HTML)
    assert response.status_code == 404
    assert "graphiql" not in response.text.lower()


async def test_development_serves_graphiql(env: Env) -> None:
    response = await env.http.get("/graphql", headers=HTML)
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


@pytest.mark.settings(
    **PRODUCTION, graphql_introspection=True, graphql_suggestions=True, graphiql=True
)
async def test_settings_turn_exploration_on_in_production(env: Env) -> None:
    assert await env.anonymous.gql_data(INTROSPECTION) == {
        "__schema": {"queryType": {"name": "Query"}}
    }
    body = await env.anonymous.gql("{ viewr { id } }")
    assert "Did you mean 'viewer'" in body["errors"][0]["message"]
    assert (await env.http.get("/graphql", headers=HTML)).status_code == 200


@pytest.mark.settings(graphql_introspection=False)
async def test_introspection_can_be_turned_off_anywhere(env: Env) -> None:
    body = await env.anonymous.gql(INTROSPECTION)
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


@pytest.mark.settings(**PRODUCTION)
async def test_production_does_not_serve_metrics_without_a_token(env: Env) -> None:
    assert (await env.http.get("/metrics")).status_code == 404


@pytest.mark.settings(**PRODUCTION, metrics_token="metrics-token-for-tests")
async def test_metrics_ask_for_their_token(env: Env) -> None:
    assert (await env.http.get("/metrics")).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await env.http.get("/metrics", headers=wrong)).status_code == 401
    right = {"Authorization": "Bearer metrics-token-for-tests"}
    response = await env.http.get("/metrics", headers=right)
    assert response.status_code == 200
    assert "gateway_requests_total" in response.text
