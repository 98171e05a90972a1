"""What the JSON-node tests share: a second app on the standard executor, and a query's
response held byte for byte equal to it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import update

from gateway.app import create_app
from gateway.db import models
from tests.conftest import Client, Env


@asynccontextmanager
async def standard_app(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same database, on the standard executor."""
    app = create_app(env.settings.model_copy(update={"graphql_executor": "standard"}))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
            yield http
    finally:
        await app.state.gateway.close()


def ordered(body: bytes) -> Any:
    """The JSON with every object as its list of pairs: key order counts."""
    return json.loads(body, object_pairs_hook=list)


async def both(
    env: Env,
    standard: httpx.AsyncClient,
    client: Client,
    query: str,
    variables: Any,
    errors: bool = False,
) -> tuple[Any, list[str]]:
    """The response of the app under test (and its statements), held equal to the standard
    executor's; `errors`: whether it has errors."""
    payload = {"query": query, "variables": variables}
    headers = client._headers(None)
    with env.counter.counting() as statements:
        got = await env.http.post("/graphql", json=payload, headers=headers)
    expected = await standard.post("/graphql", json=payload, headers=headers)
    assert got.status_code == expected.status_code == 200
    assert ("errors" in got.json()) == errors, got.json()
    assert ordered(got.content) == ordered(expected.content)
    assert got.content == expected.content  # the same bytes, even
    return got.json(), statements


def read_as_json(statements: list[str]) -> bool:
    return any("AS node_json" in s for s in statements)


async def delete_user(env: Env, user: Client) -> None:
    """Soft-delete the user (`deleted_at` set), as account deletion does."""
    async with env.sessions() as session:
        await session.execute(
            update(models.User)
            .where(models.User.id == user.user_id)
            .values(deleted_at=datetime.now(UTC))
        )
        await session.commit()


def users_read(statements: list[str]) -> int:
    """How many of the statements read users on their own (not inside a page's JSON)."""
    return len([s for s in statements if s.lstrip().startswith("SELECT users.")])
