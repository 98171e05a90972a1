"""The bounds every input meets before any work: 64-bit integers, timestamps, text without NUL.

REST's wire models (`gateway/rest/framework.py`), GraphQL's scalars and execution context
(`schema/scalars.py`, `schema/engine/execution.py`), JWT claims (`gateway/auth.py`) and webhooks
(`gateway/billing/webhooks.py`) all check against these, so a value the database or the date
arithmetic cannot hold is refused as the caller's mistake (400, `BAD_USER_INPUT`), never a 500.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from gateway.errors import ValidationFailed

# What a BigInteger column holds.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Timestamps and dates accepted as input, by the year as written: every later step (to UTC,
# a day or a year either side, a period's end) stays inside what `datetime` and the databases
# represent. OpenAPI states it as a pattern (`YEAR_PATTERN`).
FIRST_YEAR = 1970
LAST_YEAR = 8999
TIMESTAMP_RANGE = f"in the years {FIRST_YEAR} to {LAST_YEAR}"
YEAR_PATTERN = r"^(19[7-9][0-9]|[2-8][0-9]{3})-"

NUL = "\x00"
NUL_MESSAGE = "must not contain NUL characters (\\u0000)"


def trimmed(value: str, field: str, maximum: int) -> str:
    """`value` without surrounding whitespace, refused when still longer than `maximum`
    characters (a column's length)."""
    value = value.strip()
    if len(value) > maximum:
        raise ValidationFailed(f"{field} must be at most {maximum} characters", field=field)
    return value


def range_message(name: str, low: int = INT64_MIN, high: int = INT64_MAX) -> str:
    return f"{name} must be an integer between {low} and {high}"


def timestamp_in_range(value: datetime) -> datetime:
    """An aware timestamp, converted to UTC, of a year in the range; a ValueError (naming the
    range) for a naive one or one outside (which could overflow on its way to UTC)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a timezone (use Z for UTC)")
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"must be {TIMESTAMP_RANGE}")
    return value.astimezone(UTC)


def date_in_range(value: date) -> date:
    """A calendar date inside the same range as timestamps."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"must be {TIMESTAMP_RANGE}")
    return value


def nul_path(value: object, path: str = "") -> str | None:
    """Where in a decoded JSON value (keys included) a string holds a NUL, or None.

    Iterative, so a deeply nested document costs time linear in its size and no stack.
    """
    stack: list[tuple[object, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return where
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and NUL in key:
                    return child_path.replace(NUL, "\\u0000")
                stack.append((child, child_path))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
    return None
