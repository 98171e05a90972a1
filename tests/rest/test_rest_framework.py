"""The REST layer's cross-cutting rules (CONTRACT.md): envelope, 204, 404/405/415/400, paths,
headers, rate limiting."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
import uvicorn

from gateway.graphql_http import ClosingContexts
from gateway.rest.framework import Call, Endpoint, RateLimiter, RestApp, rest
from gateway.rest.routes import ENDPOINTS
from tests.asgi import call_asgi
from tests.conftest import REDIS_URL, Env
from tests.envelopes import assert_refused
from tests.rest.helpers import FakeRedis

CLIENT_HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "LegacyClient/3.2 (darwin)",
    "X-Platform": "macos",
    "X-Client-Type": "desktop",
    "X-Client-Version": "3.2.1",
    "Accept": "application/json",
}


async def new_key(client: Any) -> dict[str, Any]:
    response = await client.post("/api-keys", json={"name": "k"})
    assert response.status_code == 201
    data: dict[str, Any] = response.json()["data"]
    return data


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """The app behind a real uvicorn server on a free port, for what only real HTTP shows."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):  # uvicorn exposes a flag, not an event
            if server.started:
                break
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


# --- 204 ------------------------------------------------------------------------------------


async def test_204_over_real_http_has_empty_body_and_reason_no_content(env: Env) -> None:
    alice = await env.user()
    key = await new_key(alice)
    async with served(env.app) as base, httpx.AsyncClient(base_url=base) as http:
        headers = {"Authorization": f"Bearer {alice.token}", **CLIENT_HEADERS}
        response = await http.delete(f"/api/v1/api-keys/{key['id']}", headers=headers)
    assert response.status_code == 204
    assert response.reason_phrase == "No Content"
    assert response.content == b""
    assert "content-type" not in response.headers


async def test_every_204_route_is_declared_without_a_response_model() -> None:
    for endpoint in ENDPOINTS:
        if endpoint.status == 204:
            assert endpoint.response is None, endpoint.path


# --- 404 / 405 ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/users/me/nope/deeper", "/api-keys/a/b", "/invites"])
async def test_unknown_route_is_404_envelope(env: Env, path: str) -> None:
    alice = await env.user()
    response = await alice.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"success": False, "error": "Not found"}


async def test_unknown_route_is_404_envelope_even_without_a_token(env: Env) -> None:
    response = await env.anonymous.get("/definitely/not/here")
    assert_refused(response, 404, "Not found")


async def test_wrong_method_is_405_with_allow_header_and_envelope(env: Env) -> None:
    alice = await env.user()
    response = await alice.patch("/api-keys", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert response.json() == {"success": False, "error": "Method PATCH is not allowed here"}


async def test_405_lists_every_method_of_the_path(env: Env) -> None:
    response = await env.anonymous.post("/users/me", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, HEAD, PATCH"


# --- bodies ---------------------------------------------------------------------------------


async def test_non_json_body_is_415(env: Env) -> None:
    alice = await env.user()
    response = await alice.post(
        "/api-keys",
        content=b"name=ci",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_refused(response, 415, "Request body must be JSON (Content-Type: application/json)")


async def test_json_nested_too_deeply_is_400_not_500(env: Env) -> None:
    alice = await env.user()
    response = await alice.post("/api-keys", content=b"[" * 100_000 + b"]" * 100_000)
    assert_refused(
        response,
        400,
        "Request body is not valid JSON (JSON nested too deeply: line 1 column 1 (char 0))",
    )


async def test_malformed_json_is_400_with_where_it_broke(env: Env) -> None:
    alice = await env.user()
    response = await alice.post("/api-keys", content=b'{"name": ')
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("Request body is not valid JSON")
    assert "column" in error


async def test_json_that_is_not_an_object_is_400(env: Env) -> None:
    alice = await env.user()
    response = await alice.post("/api-keys", content=b'["name"]')
    assert_refused(response, 400, "Request body must be a JSON object")


async def test_invalid_field_is_400_naming_the_field(env: Env) -> None:
    alice = await env.user()
    response = await alice.post("/api-keys", json={"name": {"nested": True}})
    assert response.status_code == 400
    assert response.json()["error"].startswith("Invalid request body: name:")


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "APPLICATION/JSON"])
async def test_json_content_type_variants_are_accepted(env: Env, content_type: str) -> None:
    alice = await env.user()
    response = await alice.post(
        "/api-keys", content=b'{"name": "ok"}', headers={"Content-Type": content_type}
    )
    assert response.status_code == 201


async def test_unknown_body_fields_are_ignored(env: Env) -> None:
    alice = await env.user()
    response = await alice.post("/api-keys", json={"name": "ok", "somethingNew": 1})
    assert response.status_code == 201


async def test_snake_case_body_fields_are_accepted_too(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    response = await alice.post("/api-keys", json={"name": "ok", "organization_id": org_id})
    assert response.json()["data"]["organizationId"] == org_id


async def test_missing_token_wins_over_a_bad_body(env: Env) -> None:
    response = await env.anonymous.post("/api-keys", content=b"{not json")
    assert response.status_code == 401


async def test_empty_body_with_json_content_type_is_an_empty_object(env: Env) -> None:
    alice = await env.user()
    response = await alice.post("/users/me/accept-terms", content=b"")
    assert response.status_code == 200
    response = await alice.put("/users/active-account", content=b"")
    assert response.status_code == 204


# --- headers, paths -------------------------------------------------------------------------


async def test_get_with_json_content_type_and_client_headers_is_fine(env: Env) -> None:
    alice = await env.user()
    response = await alice.get("/users/me", headers=CLIENT_HEADERS)
    assert response.status_code == 200
    assert response.json()["success"] is True


async def test_get_with_a_stray_body_is_fine(env: Env) -> None:
    alice = await env.user()
    response = await alice.request("GET", "/api-keys", content=b"{}")
    assert response.status_code == 200


async def test_workos_prefixed_bearer_is_accepted_for_api_keys_too(env: Env) -> None:
    alice = await env.user()
    response = await env.http.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer workos:{alice.token}"}
    )
    assert response.status_code == 200


async def test_url_encoded_ids_in_paths_are_accepted(env: Env) -> None:
    alice = await env.user()
    org_id = await env.organization(alice)
    encoded_org = quote(org_id, safe="").replace("-", "%2D")
    response = await alice.get(f"/organizations/{encoded_org}/api-keys")
    assert response.status_code == 200
    key = await new_key(alice)
    encoded_key = key["id"].replace("-", "%2d")
    assert (await alice.delete(f"/api-keys/{encoded_key}")).status_code == 204


async def test_an_encoded_slash_stays_inside_one_path_parameter(env: Env) -> None:
    alice = await env.user()
    response = await alice.delete("/api-keys/key%2Fextra")
    assert_refused(response, 404, "API key not found")


@pytest.mark.parametrize("path", ["/users/me/", "/api-keys/", "/users/me//"])
async def test_trailing_slash_is_the_same_route(env: Env, path: str) -> None:
    alice = await env.user()
    response = await alice.get(path)
    assert response.status_code == 200


async def test_trailing_slash_on_a_path_with_an_id(env: Env) -> None:
    alice = await env.user()
    key = await new_key(alice)
    assert (await alice.delete(f"/api-keys/{key['id']}/")).status_code == 204


async def test_head_answers_like_get(env: Env) -> None:
    alice = await env.user()
    response = await alice.request("HEAD", "/users/me")
    assert response.status_code == 200


async def test_a_method_sent_in_lowercase_is_the_same_route(env: Env) -> None:
    """Straight to the ASGI app: httpx would send the method in capitals."""
    alice = await env.user()
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "get",
        "scheme": "http",
        "path": "/api/v1/users/me",
        "headers": [(b"authorization", f"Bearer {alice.token}".encode()), (b"host", b"t")],
    }
    request = {"type": "http.request", "body": b"", "more_body": False}
    sent = await call_asgi(env.app, scope, [], then=request)
    assert sent[0]["status"] == 200


async def test_query_string_does_not_change_the_route(env: Env) -> None:
    alice = await env.user()
    response = await alice.get("/users/me?ignored=1")
    assert response.status_code == 200


# --- unexpected failures --------------------------------------------------------------------


async def test_unexpected_error_is_a_500_envelope_without_details(env: Env) -> None:
    @rest(auth="none")
    async def explode(call: Call) -> None:
        raise RuntimeError("secret internals")

    app = ClosingContexts(
        RestApp([Endpoint("GET", "/boom", explode, "Boom")], env.state.authenticated_context)
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/boom")
    assert_refused(response, 500, "Internal server error")


async def test_route_table_has_unique_method_and_path_pairs() -> None:
    pairs = Counter((e.method, e.path) for e in ENDPOINTS)
    assert [pair for pair, n in pairs.items() if n > 1] == []


async def test_every_route_path_is_reachable_by_its_own_method() -> None:
    app = RestApp(ENDPOINTS, context_factory=None)  # type: ignore[arg-type]
    for endpoint in ENDPOINTS:
        concrete = endpoint.path.replace("{", "x-").replace("}", "")
        found, _, _ = app.resolve(endpoint.method, concrete)
        assert found is not None, endpoint.path
        # An earlier, more general route may shadow a literal one only if it is the same route.
        if "{" not in endpoint.path:
            assert found is endpoint, endpoint.path


def _segment_match(endpoint: Endpoint, raw_path: str) -> dict[str, str] | None:
    """Path parameters if `raw_path` is this route: trailing slashes ignored, each segment
    decoded once (so an encoded `/` stays inside its parameter), no parameter empty."""
    templates = endpoint.path.strip("/").split("/")
    segments = [unquote(part) for part in raw_path.strip("/").split("/")]
    if len(segments) != len(templates):
        return None
    params: dict[str, str] = {}
    for template, value in zip(templates, segments, strict=True):
        if template.startswith("{"):
            if not value:
                return None
            params[template[1:-1]] = value
        elif template != value:
            return None
    return params


def _linear_resolve(
    endpoints: list[Endpoint], method: str, raw_path: str
) -> tuple[Endpoint | None, dict[str, str], list[str]]:
    """The routes that match, narrowed to those with a literal segment wherever another
    matching route has a parameter (first difference wins), then the first of the method."""
    allowed: list[str] = []
    matched = [(e, p) for e in endpoints if (p := _segment_match(e, raw_path)) is not None]
    shapes = [tuple(s.startswith("{") for s in e.path.strip("/").split("/")) for e, _ in matched]
    for (endpoint, params), shape in zip(matched, shapes, strict=True):
        if shape != min(shapes):
            continue
        if endpoint.method == method:
            return endpoint, params, []
        allowed.append(endpoint.method)
    return None, {}, allowed


def test_one_path_spelled_with_two_parameter_names_is_refused() -> None:
    async def handler(call: Call) -> None:
        return None

    table = [
        Endpoint("GET", "/things/{id}", handler, "One spelling"),
        Endpoint("PUT", "/things/{thingId}", handler, "Another: only the first would answer"),
    ]
    with pytest.raises(ValueError, match="one path"):
        RestApp(table, context_factory=None)  # type: ignore[arg-type]


async def test_routing_finds_what_a_scan_of_the_table_finds() -> None:
    async def handler(call: Call) -> None:
        return None

    table = [
        *ENDPOINTS,
        Endpoint("GET", "/{tenant}/settings", handler, "A route whose first segment is a param"),
        Endpoint("PUT", "/organizations/settings", handler, "More literal: GET here is a 405"),
    ]
    app = RestApp(table, context_factory=None)  # type: ignore[arg-type]
    paths = {"/", "/nowhere", "/users", "/users/me/", "/organizations/o%2F1/settings"}
    paths |= {"/users/%6De", "/users//me", "/api%2Dkeys/k%00", "/users/me%2F", "/%E2%9C%93/x"}
    for endpoint in table:
        for value in ("me", "x-1", "settings"):
            concrete = re.sub(r"\{\w+\}", value, endpoint.path)
            paths |= {concrete, concrete + "/extra", concrete.rsplit("/", 1)[0]}
    for path in sorted(paths):
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            assert app.resolve(method, path) == _linear_resolve(table, method, path), (method, path)


# --- rate limiting --------------------------------------------------------------------------


def limited_app(env: Env, limiter: RateLimiter) -> httpx.AsyncClient:
    app = ClosingContexts(RestApp(ENDPOINTS, env.state.authenticated_context, rate_limiter=limiter))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.usefixtures("one_rate_window")
async def test_over_the_limit_is_429_with_retry_after(env: Env) -> None:
    alice = await env.user()
    headers = {"Authorization": f"Bearer {alice.token}"}
    async with limited_app(env, RateLimiter(FakeRedis(), per_minute=2)) as http:
        statuses = [(await http.get("/users/me", headers=headers)).status_code for _ in range(3)]
        refused = await http.get("/users/me", headers=headers)
    assert statuses == [200, 200, 429]
    assert refused.json() == {
        "success": False,
        "error": "Too many requests: slow down and retry later",
    }
    assert 1 <= int(refused.headers["retry-after"]) <= 60


@pytest.mark.usefixtures("one_rate_window")
async def test_rate_limit_counts_per_principal(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    async with limited_app(env, RateLimiter(FakeRedis(), per_minute=1)) as http:
        a = [
            (await http.get("/users/me", headers={"Authorization": f"Bearer {alice.token}"}))
            for _ in range(2)
        ]
        b = await http.get("/users/me", headers={"Authorization": f"Bearer {bob.token}"})
    assert [r.status_code for r in a] == [200, 429]
    assert b.status_code == 200


async def test_rate_limiter_outage_lets_requests_through(env: Env) -> None:
    alice = await env.user()
    headers = {"Authorization": f"Bearer {alice.token}"}
    async with limited_app(env, RateLimiter(FakeRedis(fail=True), per_minute=1)) as http:
        statuses = [(await http.get("/users/me", headers=headers)).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]


async def test_rate_limiting_is_off_by_default(env: Env) -> None:
    assert env.state.rate_limiter is None
    alice = await env.user()
    for _ in range(5):
        assert (await alice.get("/users/me")).status_code == 200


@pytest.mark.skipif(not REDIS_URL, reason="GATEWAY_TEST_REDIS_URL not set")
@pytest.mark.settings(redis_url=REDIS_URL, rate_limit_per_minute=3)
@pytest.mark.usefixtures("one_rate_window")
async def test_rate_limit_with_real_redis(env: Env) -> None:
    alice, bob = await env.user(), await env.user()
    try:
        statuses = [(await alice.get("/users/me")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = await alice.get("/api-keys")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert (await bob.get("/users/me")).status_code == 200
        assert (await env.anonymous.get("/openapi.json")).status_code == 200
    finally:
        await env.state.rate_limiter.close()
