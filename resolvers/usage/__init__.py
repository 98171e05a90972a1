"""Usage metering: ingest inference events with their debit (`ingestion`), show who used what
(`history`), and sum it over periods (`aggregation`); the measures are declared in `measures`."""

from resolvers.usage.aggregation import (
    GROUP_BYS,
    GroupBy,
    ModelUsage,
    Period,
    UsageBucket,
    UsageMetrics,
    UsageSummary,
    UsageTotals,
    organization_metrics,
    organization_usage_summary,
    resolve_period,
)
from resolvers.usage.history import (
    MemberUsages,
    get_usage,
    member_usages_page,
    organization_usages_page,
    organization_usages_page_ahead,
    user_usages_page,
    visible_member_usages,
    visible_user_usages,
)
from resolvers.usage.ingestion import (
    MAX_EVENTS_PER_BATCH,
    MAX_GENERATION_ID,
    RecordedUsage,
    UsageEvent,
    record_usage,
    record_usages,
)
from resolvers.usage.measures import MAX_COUNT, MICRO

__all__ = [
    "GROUP_BYS",
    "MAX_COUNT",
    "MAX_EVENTS_PER_BATCH",
    "MAX_GENERATION_ID",
    "MICRO",
    "GroupBy",
    "MemberUsages",
    "ModelUsage",
    "Period",
    "RecordedUsage",
    "UsageBucket",
    "UsageEvent",
    "UsageMetrics",
    "UsageSummary",
    "UsageTotals",
    "get_usage",
    "member_usages_page",
    "organization_metrics",
    "organization_usage_summary",
    "organization_usages_page",
    "organization_usages_page_ahead",
    "record_usage",
    "record_usages",
    "resolve_period",
    "user_usages_page",
    "visible_member_usages",
    "visible_user_usages",
]
