"""Helpers of the REST tests (no tests here): the OpenAPI document fetched and its schemas
validated, and an in-memory Redis for the rate limiter."""

from __future__ import annotations

from collections import Counter
from typing import Any

import jsonschema

from gateway.rest.framework import Endpoint
from tests.conftest import Env


async def fetch_document(env: Env) -> dict[str, Any]:
    response = await env.anonymous.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def validator_for(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Validator:
    """A 2020-12 validator for one schema of the document, with its components in reach."""
    root = {**schema, "components": document["components"]}
    return jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())


def response_schema(
    document: dict[str, Any], endpoint: Endpoint, status: int
) -> dict[str, Any] | None:
    responses = document["paths"][endpoint.path][endpoint.method.lower()]["responses"]
    declared = responses.get(str(status)) or responses["default"]
    content = declared.get("content")
    return content["application/json"]["schema"] if content else None


class FakeRedis:
    """Just enough of redis.asyncio for the limiter: INCR + EXPIRE in a pipeline."""

    def __init__(self, fail: bool = False) -> None:
        self.counts: Counter[str] = Counter()
        self.fail = fail

    def pipeline(self, transaction: bool = True) -> FakeRedis:
        self._ops: list[str] = []
        return self

    async def __aenter__(self) -> FakeRedis:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def incr(self, key: str) -> None:
        self._ops.append(key)

    def expire(self, key: str, seconds: int) -> None:
        return None

    async def execute(self) -> list[Any]:
        if self.fail:
            raise ConnectionError("redis is down")
        key = self._ops[0]
        self.counts[key] += 1
        return [self.counts[key], True]

    async def aclose(self) -> None:
        return None
