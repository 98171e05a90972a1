"""Helpers of the authentication tests (no tests here): identity-provider JWTs."""

from __future__ import annotations

import time

import jwt

from tests.conftest import Env


def make_jwt(env: Env, **claims: object) -> str:
    """An HS256 token of the configured identity provider for a new user, `claims` overriding."""
    now = int(time.time())
    payload = {
        "iss": env.settings.jwt_issuer,
        "aud": env.settings.jwt_audience,
        "sub": "idp-user-1",
        "email": "jit@example.com",
        "name": "Jit User",
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    secret = env.settings.jwt_hs256_secret
    assert secret is not None
    return jwt.encode(payload, secret.get_secret_value(), algorithm="HS256")
