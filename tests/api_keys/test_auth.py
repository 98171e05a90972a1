"""Bearer tokens: API keys and identity-provider JWTs, on GraphQL and REST."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import select

from gateway.db import models
from tests.api_keys.helpers import make_jwt
from tests.conftest import Env
from tests.envelopes import assert_refused

VIEWER = "{ viewer { id email displayName } }"


@dataclass
class JwksServer:
    url: str
    private_key: Any
    kid: str

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JwksServer]:
    """An identity provider's JWKS endpoint on 127.0.0.1 (a free port)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "test-kid", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield JwksServer(f"http://127.0.0.1:{server.server_port}/jwks.json", key, "test-kid")
    finally:
        server.shutdown()


async def test_api_key_authenticates_graphql(env: Env) -> None:
    alice = await env.user("alice@example.com", "Alice")
    data = await alice.gql_data(VIEWER)
    assert data["viewer"] == {
        "id": alice.user_id,
        "email": "alice@example.com",
        "displayName": "Alice",
    }


async def test_missing_token_is_unauthenticated_on_graphql(env: Env) -> None:
    body = await env.anonymous.gql(VIEWER)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_wrong_api_key_is_unauthenticated_on_graphql(env: Env) -> None:
    alice = await env.user()
    body = await env.client(alice.token[:-2] + "xx").gql(VIEWER)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert body["errors"][0]["message"] == "Invalid API key"


async def test_missing_token_is_401_envelope_on_rest(env: Env) -> None:
    response = await env.anonymous.get("/users/me")
    assert_refused(response, 401, "Authentication required")


async def test_revoked_api_key_is_refused(env: Env) -> None:
    alice = await env.user()
    async with env.sessions() as session:
        key = (await session.execute(select(models.ApiKey))).scalar_one()
        key.revoked_at = models.utcnow()
        await session.commit()
    response = await alice.get("/users/me")
    assert response.status_code == 401
    assert response.json()["error"] == "API key revoked"


async def test_api_key_use_records_last_used_at(env: Env) -> None:
    alice = await env.user()
    await alice.get("/users/me")
    last_used = await env.scalar(select(models.ApiKey.last_used_at))
    assert last_used is not None


async def test_first_jwt_of_a_subject_provisions_the_user(env: Env) -> None:
    token = make_jwt(env)
    data = await env.client(token).gql_data(VIEWER)
    assert data["viewer"]["email"] == "jit@example.com"
    assert data["viewer"]["displayName"] == "Jit User"
    again = await env.client(make_jwt(env)).gql_data(VIEWER)
    assert again["viewer"]["id"] == data["viewer"]["id"]
    accounts = await env.all(
        select(models.Account).where(models.Account.user_id == data["viewer"]["id"])
    )
    assert len(accounts) == 1


async def test_workos_prefix_is_stripped_case_insensitively(env: Env) -> None:
    response = await env.client("WorkOS:" + make_jwt(env)).get("/users/me")
    assert response.status_code == 200
    assert response.json()["data"]["email"] == "jit@example.com"


async def test_expired_jwt_is_refused(env: Env) -> None:
    token = make_jwt(env, exp=int(time.time()) - 3600)
    response = await env.client(token).get("/users/me")
    assert response.status_code == 401
    assert response.json()["error"] == "Token expired"


async def test_jwt_for_another_audience_is_refused(env: Env) -> None:
    response = await env.client(make_jwt(env, aud="someone-else")).get("/users/me")
    assert response.status_code == 401


async def test_jwt_signed_with_another_secret_is_refused(env: Env) -> None:
    forged = jwt.encode(
        {
            "sub": "x",
            "email": "x@example.com",
            "exp": int(time.time()) + 60,
            "iss": env.settings.jwt_issuer,
            "aud": env.settings.jwt_audience,
        },
        "another-secret-another-secret-12345",
        algorithm="HS256",
    )
    response = await env.client(forged).get("/users/me")
    assert response.status_code == 401


async def test_jwt_does_not_take_over_an_existing_email_unverified(env: Env) -> None:
    await env.user("jit@example.com")
    response = await env.client(make_jwt(env)).get("/users/me")
    assert response.status_code == 401


async def test_verified_jwt_links_an_existing_user_by_email(env: Env) -> None:
    alice = await env.user("jit@example.com")
    response = await env.client(make_jwt(env, email_verified=True)).get("/users/me")
    assert response.status_code == 200
    assert response.json()["data"]["id"] == alice.user_id


async def test_service_token_is_not_a_user(env: Env) -> None:
    response = await env.client("service-token-for-tests").get("/users/me")
    assert response.status_code == 401


async def test_rs256_jwt_is_verified_against_the_jwks_url(
    env: Env, jwks_server: JwksServer
) -> None:
    from gateway.auth import Authenticator

    settings = env.settings.model_copy(
        update={"jwt_jwks_url": jwks_server.url, "jwt_hs256_secret": None}
    )
    authenticator = Authenticator(settings)
    token = jwks_server.sign(
        {
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
            "sub": "rsa-user",
            "email": "rsa@example.com",
            "exp": int(time.time()) + 60,
        }
    )
    async with env.sessions() as session:
        principal = await authenticator.authenticate(session, token)
        email = await session.scalar(
            select(models.User.email).where(models.User.id == principal.user_id)
        )
    assert principal.via == "jwt"
    assert email == "rsa@example.com"


async def test_jwt_signed_by_an_unknown_key_is_refused_with_jwks(
    env: Env, jwks_server: JwksServer
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from gateway.auth import Authenticator
    from gateway.errors import Unauthenticated

    settings = env.settings.model_copy(update={"jwt_jwks_url": jwks_server.url})
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(
        {"sub": "x", "email": "x@example.com", "exp": int(time.time()) + 60},
        other_key,
        algorithm="RS256",
        headers={"kid": "unknown-kid"},
    )
    async with env.sessions() as session:
        with pytest.raises(Unauthenticated):
            await Authenticator(settings).authenticate(session, token)
