"""schema/engine/prepared.py: a parsed document is validated once; its errors are kept with it."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.settings import Settings
from schema import build_schema
from schema.engine import prepared as caches


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []
    real = caches.validate

    def counting(schema: Any, document: Any, rules: Any, **kwargs: Any) -> Any:
        seen.append(document)
        return real(schema, document, rules, **kwargs)

    monkeypatch.setattr(caches, "validate", counting)
    return seen


async def test_a_query_text_is_validated_once(validations: list[Any]) -> None:
    schema = build_schema(Settings())
    for _ in range(3):
        result = await schema.execute("{ __typename }")
        assert result.errors is None
    assert len(validations) == 1


async def test_an_invalid_query_fails_the_same_way_every_time(validations: list[Any]) -> None:
    schema = build_schema(Settings())
    messages = [
        [e.message for e in (await schema.execute("{ plans { nope } }")).errors or []]
        for _ in range(2)
    ]
    assert messages[0] == messages[1]
    assert messages[0][0].startswith("Cannot query field 'nope' on type 'Plan'.")
    assert len(validations) == 1


async def test_each_query_text_and_each_schema_is_validated_on_its_own(
    validations: list[Any],
) -> None:
    first, second = build_schema(Settings()), build_schema(Settings())
    assert (await first.execute("{ __typename }")).errors is None
    assert (await first.execute("query Named { __typename }")).errors is None
    assert (await second.execute("{ __typename }")).errors is None
    assert (await second.execute("{ __typename }")).errors is None
    assert len(validations) == 3
