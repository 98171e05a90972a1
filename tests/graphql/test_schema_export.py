"""schema.graphql is the exported SDL of the code's schema; it must not drift."""

from __future__ import annotations

from pathlib import Path

from schema import build_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_schema_graphql_matches_the_code() -> None:
    exported = build_schema().as_str() + "\n"
    assert SCHEMA_FILE.read_text() == exported, (
        "schema.graphql is stale: run `gateway export-schema` (or `make schema`)"
    )
