"""GraphQL Usage: recorded inferences, their connections, aggregates, metrics and ingestion."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.types import Info

from gateway.db import models
from resolvers import organizations, permissions
from resolvers import usage as metering
from resolvers.usage import UsageEvent, measures
from schema import declare
from schema.errors import Payload, mutation
from schema.relay import Node
from schema.rows import FromReaders
from schema.scalars import JSON, BigInt

if TYPE_CHECKING:
    from schema.organization import Organization
    from schema.user import User


@strawberry.type(
    description="One recorded inference, billed to a personal or organization account."
)
class Usage(Node, FromReaders[models.UsageRecord]):
    id: strawberry.ID
    generation_id: str = strawberry.field(description="The inference's generation id.")
    provider_name: str
    model_name: str
    model_type_name: str
    operation: str | None = strawberry.field(description="null for plain inference.")
    __annotations__.update(measures.as_fields(BigInt))  # the token counts (measures.py)
    total_tokens: BigInt
    cost_usd: float = strawberry.field(description="Provider cost in USD.")
    cost_micro_usd: BigInt = strawberry.field(description="Provider cost in micro-USD.")
    credits_used: BigInt = strawberry.field(description="Micro-credits charged.")
    overdrawn: bool = strawberry.field(description="The debit took the account below zero.")
    metadata: JSON
    created_at: datetime
    _model: strawberry.Private[models.UsageRecord]

    @strawberry.field
    def user_id(self) -> strawberry.ID:
        return strawberry.ID(self._model.user_id)

    @strawberry.field(description="The paying organization; null for personal usage.")
    def organization_id(self) -> strawberry.ID | None:
        org_id = self._model.organization_id
        return strawberry.ID(org_id) if org_id else None

    @strawberry.field
    async def user(self, info: Info) -> Annotated[User, strawberry.lazy("schema.user")] | None:
        from schema.user import User

        user = await info.context.loaders.user_row_by_id.load(self._model.user_id)
        return User.unless_deleted(user)

    @strawberry.field(description="The paying organization; null for personal usage.")
    async def organization(
        self, info: Info
    ) -> Annotated[Organization, strawberry.lazy("schema.organization")] | None:
        from schema.organization import Organization

        org_id = self._model.organization_id
        if org_id is None:
            return None
        org = await organizations.get_organization(info.context, org_id)
        return Organization.from_model(org) if org is not None else None


def _cost_usd(micro_usd: int) -> float:
    return micro_usd / metering.MICRO


def _metadata(value: object) -> object:
    return value or {}


Usage.readers = declare.RecordReaders(
    [
        *(
            (name, name, None)
            for name in (
                "id",
                "generation_id",
                "provider_name",
                "model_name",
                "model_type_name",
                "operation",
                *measures.TOKEN_COUNTS,
                "total_tokens",
                "cost_micro_usd",
                "credits_used",
                "overdrawn",
                "created_at",
            )
        ),
        ("cost_usd", "cost_micro_usd", _cost_usd),
        ("metadata", "metadata_", _metadata),
    ]
)


# What each Usage field reads of its record (schema/declare.py): the relation fields read
# the ids, which every row has.
declare.node_type(
    "Usage",
    Usage.readers,
    always=("id", "user_id", "organization_id"),
    others={"userId": (), "organizationId": (), "user": (), "organization": ()},
    model=models.UsageRecord,
    # `user` shows the row (null for a deleted user) and checks nothing; `organization`
    # checks who may see it, and stays a resolver.
    objects={"user": declare.ToOne("User", "user_id", unless=("deleted_at",))},
)


@strawberry.enum(description="How usage totals are bucketed.")
class UsageGroupBy(enum.Enum):
    DAY = "day"
    MODEL = "model"
    MEMBER = "member"


@strawberry.type(description="Usage totals; credits in micro-credits.")
class UsageTotals:
    # requests, the token counts, total tokens, credits, cost in micro-USD (measures.py)
    __annotations__.update(dict.fromkeys(measures.TOTALS, BigInt))
    cost_usd: float

    @classmethod
    def of(cls, totals: metering.UsageTotals) -> UsageTotals:
        sums = {name: BigInt(value) for name, value in totals.sums.items()}
        return cls(**sums, cost_usd=totals.cost_usd)


@strawberry.type(description="Totals of one day (YYYY-MM-DD, UTC), model, or member id.")
class UsageBucket:
    key: str
    totals: UsageTotals


@strawberry.type
class UsagePeriod:
    """The period a summary or the metrics cover: [from, to)."""

    from_: datetime = strawberry.field(name="from")
    to: datetime


@strawberry.type(description="Usage over [from, to), bucketed.")
class UsageSummary(UsagePeriod):
    group_by: UsageGroupBy
    buckets: list[UsageBucket]
    totals: UsageTotals


@strawberry.type
class ModelUsage:
    model_name: str
    requests: BigInt
    credits_used: BigInt


@strawberry.type(description="Activity over [from, to).")
class UsageMetrics(UsagePeriod):
    totals: UsageTotals
    active_members: int = strawberry.field(description="Distinct users with usage.")
    top_models: list[ModelUsage] = strawberry.field(description="At most 5, by requests.")


FromArg = Annotated[
    datetime | None,
    strawberry.argument(name="from", description="Start (inclusive); default to - 30 days."),
]
ToArg = Annotated[
    datetime | None,
    strawberry.argument(description="End (exclusive); default now; at most a year after from."),
]


async def organization_usage_summary(
    root: Any,
    info: Info,
    from_: FromArg = None,
    to: ToArg = None,
    group_by: UsageGroupBy = UsageGroupBy.DAY,
) -> UsageSummary:
    """Usage totals per day, model or member (owners and admins)."""
    period = metering.resolve_period(from_, to, info.context.now)
    access = await permissions.manager_access(info.context, root._model.id)
    found = await metering.organization_usage_summary(access, period, group_by=group_by.value)
    return UsageSummary(
        from_=found.start,
        to=found.end,
        group_by=UsageGroupBy(found.group_by),
        buckets=[UsageBucket(key=b.key, totals=UsageTotals.of(b.totals)) for b in found.items],
        totals=UsageTotals.of(found.totals),
    )


async def organization_metrics(
    root: Any, info: Info, from_: FromArg = None, to: ToArg = None
) -> UsageMetrics:
    """Requests, tokens, credits, cost, active members and top models (owners and admins)."""
    period = metering.resolve_period(from_, to, info.context.now)
    access = await permissions.manager_access(info.context, root._model.id)
    found = await metering.organization_metrics(access, period)
    return UsageMetrics(
        from_=found.start,
        to=found.end,
        totals=UsageTotals.of(found.totals),
        active_members=found.active_members,
        top_models=[
            ModelUsage(
                model_name=m.model_name,
                requests=BigInt(m.requests),
                credits_used=BigInt(m.credits_used),
            )
            for m in found.top_models
        ],
    )


# --- Ingestion (service token only) ------------------------------------------------------------


@strawberry.input(description="One inference to record and bill.")
class RecordUsageInput:
    generation_id: str = strawberry.field(description="Idempotency key: recorded once.")
    provider: str
    model: str
    model_type: str
    __annotations__.update(measures.as_fields(BigInt))  # the token counts (measures.py)
    cost_usd: float = strawberry.field(description="Provider cost in USD.")
    credits: BigInt = strawberry.field(description="Micro-credits to charge.")
    user_id: strawberry.ID
    organization_id: strawberry.ID | None = strawberry.field(
        default=None, description="The paying organization; null bills the personal account."
    )
    operation: str | None = None
    total_tokens: BigInt | None = strawberry.field(
        default=None, description="Default prompt + completion."
    )
    metadata: JSON | None = None
    created_at: datetime | None = strawberry.field(default=None, description="Default now.")

    def event(self) -> UsageEvent:
        return UsageEvent.of(self)


@strawberry.input(description="Up to 1,000 events, recorded all or nothing.")
class RecordUsagesInput:
    events: list[RecordUsageInput]


@strawberry.type
class RecordedUsage:
    usage: Usage
    duplicate: bool = strawberry.field(description="Already recorded: not debited again.")
    overdrawn: bool = strawberry.field(description="The debit took the account below zero.")

    @classmethod
    def of(cls, result: metering.RecordedUsage) -> RecordedUsage:
        return cls(
            usage=Usage.from_model(result.usage),
            duplicate=result.duplicate,
            overdrawn=result.overdrawn,
        )


@strawberry.type
class RecordUsagePayload(Payload):
    usage: Usage | None = None
    duplicate: bool | None = None
    overdrawn: bool | None = None


@strawberry.type
class RecordUsagesPayload(Payload):
    results: list[RecordedUsage] | None = strawberry.field(
        default=None, description="One per event, in order."
    )


@strawberry.type
class UsageMutation:
    @mutation("Record an inference and debit its payer (service token).")
    async def record_usage(self, info: Info, input: RecordUsageInput) -> RecordUsagePayload:
        result = await metering.record_usage(info.context, input.event())
        return RecordUsagePayload(
            usage=Usage.from_model(result.usage),
            duplicate=result.duplicate,
            overdrawn=result.overdrawn,
        )

    @mutation("Record a batch of inferences in one transaction.")
    async def record_usages(self, info: Info, input: RecordUsagesInput) -> RecordUsagesPayload:
        events = [e.event() for e in input.events]
        results = await metering.record_usages(info.context, events)
        return RecordUsagesPayload(results=[RecordedUsage.of(r) for r in results])
