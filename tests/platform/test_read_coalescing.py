"""The combined statement of coalesced reads (gateway/db/coalesce.py)."""

from __future__ import annotations

from gateway.db.coalesce import Shape, combined_sql


def test_coalesced_reads_renumber_each_reads_parameters_after_the_previous_ones() -> None:
    sql = combined_sql(
        [
            Shape("SELECT a FROM x WHERE a = $1 AND b = $2", 2, 1, ()),
            Shape("SELECT c, d FROM y WHERE c = $1", 1, 2, (1,)),
        ]
    )
    assert sql == (
        "SELECT ARRAY(SELECT ROW(t.c0) FROM (SELECT a FROM x WHERE a = $1 AND b = $2) AS t(c0)),"
        " ARRAY(SELECT ROW(t.c0, t.c1::text) FROM (SELECT c, d FROM y WHERE c = $3) AS t(c0, c1))"
    )


def test_coalesced_reads_leave_a_dollar_inside_a_string_literal_alone() -> None:
    sql = combined_sql(
        [
            Shape("SELECT 1 WHERE a = $1", 1, 1, ()),
            Shape("SELECT '$1 it''s $2' WHERE b = $1", 1, 1, ()),
        ]
    )
    assert "'$1 it''s $2' WHERE b = $2" in sql
