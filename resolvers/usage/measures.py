"""The usage measures, declared once: the token counts an inference reports and what usage
totals sum. Ingestion's checks, the SQL sums, GraphQL's `Usage`, `UsageTotals` and
`RecordUsageInput`, and REST's usage outputs and input all read them from here, so a new
token count is its column (model and migration), its name in `TOKEN_COUNTS`, and a test."""

from __future__ import annotations

MICRO = 1_000_000
# Token counts and credits stay below this, so that the sums of a year of usage fit 64 bits.
MAX_COUNT = 2**62

# The token counts an event reports: each is a BigInteger column of UsageRecord with this name,
# a non-negative integer below MAX_COUNT in the event (0 when absent), shown on each usage and
# summed in totals. Every shape lists them together, in this order (`as_fields`).
TOKEN_COUNTS: tuple[str, ...] = ("prompt_tokens", "completion_tokens")

# What usage totals sum: UsageRecord columns. `total_tokens` defaults to the token counts'
# sum; `cost_micro_usd` is shown as `cost_usd` too.
SUMMED: tuple[str, ...] = (*TOKEN_COUNTS, "total_tokens", "credits_used", "cost_micro_usd")
# Usage totals in the order both protocols show them: the rows counted, then the sums.
TOTALS: tuple[str, ...] = ("requests", *SUMMED)


def camel(name: str) -> str:
    """A measure's name on the wire and in GraphQL: `prompt_tokens` → `promptTokens`."""
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def as_fields(annotation: object) -> dict[str, object]:
    """The token counts as class annotations of one type, for the shapes that list them (a
    Strawberry type, a pydantic model): `__annotations__.update(as_fields(BigInt))` in the
    class body, where they belong in the field order."""
    return dict.fromkeys(TOKEN_COUNTS, annotation)
