"""Timestamps on the wire, for GraphQL's `DateTime` and REST alike: RFC 3339 in UTC with
microseconds and `Z` (CONTRACT.md "Casing")."""

from __future__ import annotations

from datetime import UTC, datetime


def format_datetime(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds and `Z`, e.g. 2025-12-01T22:34:35.355099Z.

    Every timestamp of every response goes through here: the fields come from tables of their
    digits (half the instructions of `%`-formatting them, a third of `strftime`'s).
    """
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    year = _YEARS.get(value.year)
    if year is None:
        year = _YEARS[value.year] = f"{value.year:04d}"
    micro = value.microsecond
    return (
        f"{year}-{_D2[value.month]}-{_D2[value.day]}T{_D2[value.hour]}:{_D2[value.minute]}"
        f":{_D2[value.second]}.{_D3[micro // 1000]}{_D3[micro % 1000]}Z"
    )


_D2 = [f"{i:02d}" for i in range(100)]
_D3 = [f"{i:03d}" for i in range(1000)]
_YEARS: dict[int, str] = {}
