"""The loaders' statements as PostgreSQL receives them: their own constants are written into the
SQL, so that a plan made once for every execution (a generic plan) still knows them."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import postgresql

from gateway.db.expressions import constant
from resolvers.loaders import plans
from resolvers.loaders.invites import invite_count_by_organization_id


@pytest.mark.parametrize(
    ("statement", "written"),
    [
        (plans._SUBSCRIPTIONS_WITH_PLANS_BY_ORGANIZATION_IDS, "subscriptions.status != 'canceled'"),
        (plans._SUBSCRIPTION_WITH_PLAN_BY_ORGANIZATION_ID, "subscriptions.status != 'canceled'"),
        (invite_count_by_organization_id.stmt, "invites.status = 'pending'"),
    ],
)
def test_a_loaders_constant_filter_is_in_its_sql_not_a_parameter(
    statement: object, written: str
) -> None:
    compiled = statement.compile(dialect=postgresql.asyncpg.dialect())  # type: ignore[attr-defined]
    assert written in str(compiled)
    assert set(compiled.params) <= {"_key", "_keys"}  # the key's parameter, nothing bound else


@pytest.mark.parametrize("value", ["it's", "a b", "x;--", ""])
def test_a_constant_refuses_anything_but_a_plain_word(value: str) -> None:
    with pytest.raises(ValueError, match="not a plain word"):
        constant(value)
