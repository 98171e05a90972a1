"""Scalars: BigInt for micro-credit amounts, DateTime as RFC 3339 UTC with `Z`, JSON."""

from __future__ import annotations

import enum
import re
from datetime import datetime
from typing import NewType, TypeVar

import strawberry
from strawberry.types.scalar import ScalarDefinition

from gateway.inputs import (
    INT64_MAX,
    INT64_MIN,
    TIMESTAMP_RANGE,
    range_message,
    timestamp_in_range,
)
from gateway.timestamps import format_datetime

__all__ = ["JSON", "SCALAR_MAP", "BigInt", "enum_of", "format_datetime"]

BigInt = NewType("BigInt", int)
JSON = NewType("JSON", object)


E = TypeVar("E", bound=enum.Enum)


def enum_of(enum_class: type[E], value: object) -> E:
    """`enum_class(value)` by a dictionary lookup where it can (a tenth of the call's cost);
    the call itself, with its error, for anything else."""
    try:
        return enum_class._value2member_map_[value]  # type: ignore[return-value]
    except (KeyError, TypeError):
        return enum_class(value)


def _parse_datetime(value: object) -> datetime:
    """An RFC 3339 string with a timezone, in the range every later step survives."""
    if not isinstance(value, str):
        raise ValueError("DateTime must be an RFC 3339 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("DateTime must be an RFC 3339 timestamp") from None
    try:
        return timestamp_in_range(parsed)
    except ValueError as error:
        raise ValueError(f"DateTime {error}") from None


_DECIMAL = re.compile(r"-?[0-9]{1,19}")


def _parse_big_int(value: object) -> int:
    """An integer (or its decimal string, for clients whose numbers are doubles) that a
    BigInteger column holds; not a boolean, a float or anything else."""
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("BigInt must be an integer")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(range_message("BigInt"))
    return value


SCALAR_MAP: dict[object, ScalarDefinition] = {
    BigInt: strawberry.scalar(
        name="BigInt",
        description=(
            "An integer that may exceed 32 bits (micro-credits: 1 USD = 1,000,000), between "
            "-2^63 and 2^63-1; as input, also its decimal string."
        ),
        serialize=int,
        parse_value=_parse_big_int,
    ),
    datetime: strawberry.scalar(
        name="DateTime",
        description=(
            "RFC 3339 timestamp in UTC with microseconds, e.g. 2025-12-01T22:34:35.355099Z; "
            f"as input, with a timezone, {TIMESTAMP_RANGE}."
        ),
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
