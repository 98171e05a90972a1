"""Scalars on the wire: timestamps as the contract writes them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from gateway.rest.wire import TIMESTAMP_PATTERN
from schema.member import Role
from schema.scalars import enum_of, format_datetime


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2025, 12, 1, 22, 34, 35, 355099, tzinfo=UTC), "2025-12-01T22:34:35.355099Z"),
        (datetime(2026, 3, 1, 10, 0, 0, 0, tzinfo=UTC), "2026-03-01T10:00:00.000000Z"),
        (
            datetime(2025, 1, 1, 1, 0, 0, 7, tzinfo=timezone(timedelta(hours=2))),
            "2024-12-31T23:00:00.000007Z",
        ),
        (datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC), "0999-01-02T03:04:05.000000Z"),
    ],
)
def test_timestamps_are_utc_with_microseconds_and_z(value: datetime, text: str) -> None:
    assert format_datetime(value) == text
    assert re.match(TIMESTAMP_PATTERN, text)
    assert datetime.fromisoformat(text) == value


@pytest.mark.parametrize("value", ["owner", "member", "nope", None, ["owner"]])
def test_enum_of_answers_as_the_enum_call(value: Any) -> None:
    try:
        expected: Any = Role(value)
    except ValueError as error:
        with pytest.raises(ValueError, match=re.escape(str(error))):
            enum_of(Role, value)
    else:
        assert enum_of(Role, value) is expected
