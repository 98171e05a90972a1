"""resolvers/usage/measures.py: the one declaration of the usage measures, held to the model
and to every shape that both protocols derive from it."""

from __future__ import annotations

from sqlalchemy import BigInteger
from sqlmodel import SQLModel

from gateway.db.models import UsageRecord
from gateway.rest import usage as rest_usage
from resolvers.usage import measures
from schema import build_schema


def test_every_summed_measure_is_a_64_bit_column_and_every_such_column_is_declared() -> None:
    table = SQLModel.metadata.tables[UsageRecord.__tablename__]
    counts = {c.name for c in table.columns if isinstance(c.type, BigInteger)}
    assert counts == set(measures.SUMMED), (
        "UsageRecord's BigInteger columns are not measures.SUMMED"
    )
    assert all(not table.columns[name].nullable for name in measures.SUMMED)


def _runs_of_token_counts(names: list[str], *, camel: bool = False) -> bool:
    """The token counts appear in `names` together, in their declared order."""
    wanted = [measures.camel(name) if camel else name for name in measures.TOKEN_COUNTS]
    return any(names[i : i + len(wanted)] == wanted for i in range(len(names)))


def test_both_protocols_shapes_list_the_token_counts() -> None:
    graphql = build_schema().as_str()
    for type_name in ("type Usage ", "type UsageTotals ", "input RecordUsageInput "):
        block = graphql.split(type_name, 1)[1].split("}", 1)[0]
        fields = [line.split(":")[0].strip() for line in block.splitlines() if ":" in line]
        assert _runs_of_token_counts(fields, camel=True), type_name
    for model in (
        rest_usage.UsageTransactionOut,
        rest_usage.UsageTotalsOut,
        rest_usage.UsageBucketOut,
        rest_usage.OrganizationMetricsOut,
        rest_usage.UsageEventIn,
    ):
        assert _runs_of_token_counts(list(model.model_fields)), model.__name__


def test_camel_case_is_the_wire_and_graphql_spelling() -> None:
    assert measures.camel("prompt_tokens") == "promptTokens"
    assert measures.camel("cost_micro_usd") == "costMicroUsd"
