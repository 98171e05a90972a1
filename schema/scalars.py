"""Scalars: BigInt for micro-credit amounts, DateTime as RFC 3339 UTC with `Z`, JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

BigInt = NewType("BigInt", int)
JSON = NewType("JSON", object)


def format_datetime(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds and `Z`, e.g. 2025-12-01T22:34:35.355099Z (every
    timestamp of every response goes through here: formatted directly, ~2x `isoformat`)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return _RFC3339 % (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


_RFC3339 = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"


def _parse_datetime(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("DateTime needs a timezone (use Z for UTC)")
    return parsed.astimezone(UTC)


SCALAR_MAP: dict[object, ScalarDefinition] = {
    BigInt: strawberry.scalar(
        name="BigInt",
        description="An integer that may exceed 32 bits (micro-credits: 1 USD = 1,000,000).",
        serialize=int,
        parse_value=int,
    ),
    datetime: strawberry.scalar(
        name="DateTime",
        description="RFC 3339 timestamp in UTC with microseconds, e.g. 2025-12-01T22:34:35.355099Z.",
        serialize=format_datetime,
        parse_value=_parse_datetime,
    ),
    JSON: strawberry.scalar(
        name="JSON",
        description="Arbitrary JSON value.",
        serialize=lambda v: v,
        parse_value=lambda v: v,
    ),
}
