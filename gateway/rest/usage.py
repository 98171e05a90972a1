"""REST handlers for usage history, aggregates, metrics and ingestion."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic.config import JsonDict
from starlette.responses import Response

from gateway.db.models import User
from gateway.errors import ValidationFailed
from gateway.inputs import YEAR_PATTERN, date_in_range, timestamp_in_range
from gateway.rest.framework import Call, envelope_ok, rest
from gateway.rest.wire import (
    EmptyIfNone,
    Instant,
    Out,
    PageQuery,
    Timestamp,
    Wire,
    WireIn,
    row_writer,
)
from resolvers import permissions, usage
from resolvers.usage import UsageEvent, UsageTotals, measures


def _string_when_present(schema: JsonDict) -> None:
    """Documented as a string: a None is left out of the body, never sent as null."""
    schema.pop("anyOf", None)
    schema.pop("default", None)
    schema["type"] = "string"


class UsageTransactionOut(Out):
    id: str = Field(description="The usage id (`usg-…`)")
    generation_id: str = Field(description="The inference's generation id (idempotency key)")
    ai_inference_provider_name: str = Field(validation_alias="provider_name")
    ai_model_name: str = Field(validation_alias="model_name")
    ai_model_type_name: str = Field(validation_alias="model_type_name")
    __annotations__.update(measures.as_fields(int))  # the token counts (measures.py)
    total_tokens: int
    cost_usd: Annotated[float, BeforeValidator(lambda micro: micro / usage.MICRO)] = Field(
        validation_alias="cost_micro_usd", description="Provider cost in USD"
    )
    credits_used: int = Field(description="Micro-credits charged (1 USD = 1,000,000)")
    operation: str | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        json_schema_extra=_string_when_present,
        description="Omitted for plain inference, else e.g. `web_search`",
    )
    organization_id: EmptyIfNone = Field(
        description='The paying organization; "" for personal usage'
    )
    user_id: str
    metadata: Annotated[dict[str, Any], BeforeValidator(lambda value: value or {})] = Field(
        validation_alias="metadata_"
    )
    created_at: Timestamp


class UsageListOut(Wire):
    items: list[UsageTransactionOut]
    next_cursor: str | None


class MemberUsageTransactionOut(UsageTransactionOut):
    member_display_name: str
    member_email: str


# The list routes' items, written from the declarations above (`row_writer`).
usage_item = row_writer(UsageTransactionOut)
member_usage_item = row_writer(
    MemberUsageTransactionOut, given=("member_display_name", "member_email")
)


class MemberUsageListOut(Wire):
    items: list[MemberUsageTransactionOut]
    next_cursor: str | None


@rest(query=PageQuery, response=UsageListOut)
async def list_user_usages(call: Call) -> Response:
    """The caller's usage history (personal and in organizations), newest first."""
    args = call.query.page_args(call.ctx)
    page = await usage.user_usages_page(
        permissions.personal_access(call.ctx, call.path["id"]), args
    )
    items = [usage_item(record) for record in page.items]
    return envelope_ok(200, {"items": items, "nextCursor": page.next_cursor})


@rest(query=PageQuery, response=MemberUsageListOut)
async def list_member_usages(call: Call) -> Response:
    """A member's usage in the organization (owners, admins, and the member themself)."""
    args, member_id = call.query.page_args(call.ctx), call.path["memberId"]
    # The caller's membership, and the member with its user, in one statement.
    access = await permissions.member_access(call.ctx, call.path["orgId"], showing_member=member_id)
    found = await usage.member_usages_page(access, member_id, args)
    user: User | None = found.user
    member = {
        "member_display_name": user.display_name if user is not None else "",
        "member_email": user.email if user is not None else "",
    }
    items = [member_usage_item(record, member) for record in found.page.items]
    return envelope_ok(200, {"items": items, "nextCursor": found.page.next_cursor})


# --- Aggregates --------------------------------------------------------------------------------


def _when(value: str | None, name: str) -> datetime | date | None:
    """`YYYY-MM-DD` (a whole UTC day) or an RFC 3339 timestamp with a timezone."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
        else:
            parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValidationFailed(
            f"{name} must be a date (YYYY-MM-DD) or an RFC 3339 timestamp", field=name
        ) from None
    try:
        return date_in_range(day) if len(value) == 10 else timestamp_in_range(parsed)
    except ValueError as error:
        raise ValidationFailed(f"{name} {error}", field=name) from None


class PeriodQuery(Wire):
    from_: str | None = Field(
        default=None,
        alias="from",
        max_length=40,
        json_schema_extra={"pattern": YEAR_PATTERN},
        description="Start: a date (whole UTC day) or an RFC 3339 timestamp; default to - 30 days",
    )
    to: str | None = Field(
        default=None,
        max_length=40,
        json_schema_extra={"pattern": YEAR_PATTERN},
        description="End: a date (included) or an RFC 3339 timestamp (excluded); default now. "
        "At most one year after from.",
    )

    def period(self) -> tuple[datetime | date | None, datetime | date | None]:
        return _when(self.from_, "from"), _when(self.to, "to")


class UsageQuery(PeriodQuery):
    group_by: Literal["day", "model", "member"] = Field(
        default="day", description="Bucket by UTC day (`YYYY-MM-DD`), model name, or member id"
    )


class UsageTotalsOut(Wire):
    requests: int
    __annotations__.update(measures.as_fields(int))  # the token counts (measures.py)
    total_tokens: int
    credits_used: int = Field(description="Micro-credits")
    cost_usd: float = Field(description="Provider cost in USD")

    @classmethod
    def fields_of(cls, totals: UsageTotals) -> dict[str, Any]:  # keyword arguments, by name
        """The totals' fields: every sum but the cost in micro-USD, which shows in USD."""
        sums = {name: value for name, value in totals.sums.items() if name != "cost_micro_usd"}
        return {**sums, "cost_usd": totals.cost_usd}


class UsageBucketOut(Wire):
    key: str = Field(
        description="The day (YYYY-MM-DD, UTC), the model name, or the member id "
        "(the user id for someone no longer a member)"
    )
    requests: int
    __annotations__.update(measures.as_fields(int))  # the token counts (measures.py)
    total_tokens: int
    credits_used: int
    cost_usd: float


class OrganizationUsageOut(Wire):
    from_: Timestamp = Field(serialization_alias="from")
    to: Timestamp
    group_by: str
    items: list[UsageBucketOut] = Field(
        description="Days in date order; models and members by credits used, most first"
    )
    totals: UsageTotalsOut


class TopModelOut(Wire):
    ai_model_name: str
    requests: int
    credits_used: int


class OrganizationMetricsOut(Wire):
    from_: Timestamp = Field(serialization_alias="from")
    to: Timestamp
    requests: int
    __annotations__.update(measures.as_fields(int))  # the token counts (measures.py)
    total_tokens: int
    credits_used: int
    cost_usd: float
    active_members: int = Field(description="Distinct users with usage in the period")
    top_models: list[TopModelOut] = Field(description="At most 5, by requests")


@rest(query=UsageQuery, response=OrganizationUsageOut)
async def get_organization_usage(call: Call) -> OrganizationUsageOut:
    """The organization's usage over [from, to), grouped by day, model or member."""
    start, end = call.query.period()
    period = usage.resolve_period(start, end, call.ctx.now)
    access = await permissions.manager_access(call.ctx, call.path["orgId"])
    summary = await usage.organization_usage_summary(access, period, group_by=call.query.group_by)
    return OrganizationUsageOut(
        from_=summary.start,
        to=summary.end,
        group_by=summary.group_by,
        items=[
            UsageBucketOut(key=b.key, **UsageTotalsOut.fields_of(b.totals)) for b in summary.items
        ],
        totals=UsageTotalsOut(**UsageTotalsOut.fields_of(summary.totals)),
    )


@rest(query=PeriodQuery, response=OrganizationMetricsOut)
async def get_organization_metrics(call: Call) -> OrganizationMetricsOut:
    """Requests, tokens, credits, cost, active members and top models over [from, to)."""
    start, end = call.query.period()
    period = usage.resolve_period(start, end, call.ctx.now)
    access = await permissions.manager_access(call.ctx, call.path["orgId"])
    metrics = await usage.organization_metrics(access, period)
    return OrganizationMetricsOut(
        from_=metrics.start,
        to=metrics.end,
        **UsageTotalsOut.fields_of(metrics.totals),
        active_members=metrics.active_members,
        top_models=[
            TopModelOut(
                ai_model_name=m.model_name, requests=m.requests, credits_used=m.credits_used
            )
            for m in metrics.top_models
        ],
    )


# --- Ingestion ---------------------------------------------------------------------------------


# Token counts and credits: what the sums of a year of usage still hold in 64 bits.
Count = Annotated[int, Field(ge=0, lt=usage.MAX_COUNT)]


class UsageEventIn(WireIn):
    generation_id: str = Field(
        max_length=usage.MAX_GENERATION_ID,
        description="The inference's generation id: the idempotency key",
    )
    provider: str = Field(max_length=100, description="Inference provider name")
    model: str = Field(max_length=200, description="Model name")
    model_type: str = Field(max_length=100, description="Model type name")
    operation: str | None = Field(
        default=None, max_length=100, description="e.g. `web_search`; omit for plain"
    )
    __annotations__.update(measures.as_fields(Count))  # the token counts (measures.py)
    total_tokens: Count | None = Field(default=None, description="Default prompt + completion")
    cost_usd: float = Field(
        ge=0,
        lt=usage.MAX_COUNT / usage.MICRO,
        allow_inf_nan=False,
        description="Provider cost in USD (stored in micro-USD)",
    )
    credits: Count = Field(description="Micro-credits to charge the paying account")
    user_id: str = Field(max_length=30)
    organization_id: str | None = Field(
        default=None,
        max_length=30,
        description="The paying organization (the user must be a member); null "
        "or omitted bills the user's personal account",
    )
    metadata: dict[str, Any] | None = Field(default=None, description="A JSON object")
    created_at: Instant | None = Field(default=None, description="When it happened; default now")

    def event(self) -> UsageEvent:
        return UsageEvent.of(self)


class RecordUsagesIn(WireIn):
    """`{"events": [event, …]}` (1 to 1,000, one transaction: all or nothing), or a single
    event object, which is taken as a batch of one (errors then name `events[0].…`)."""

    events: list[UsageEventIn] = Field(min_length=1, max_length=usage.MAX_EVENTS_PER_BATCH)

    @model_validator(mode="before")
    @classmethod
    def _single_event(cls, data: object) -> object:
        if isinstance(data, dict) and "events" not in data:
            return {"events": [data]}
        return data


class RecordedUsageOut(Wire):
    id: str = Field(description="The usage id (the first one's, for a duplicate)")
    generation_id: str
    duplicate: bool = Field(description="Already recorded: nothing written or debited again")
    overdrawn: bool = Field(description="The debit took the paying account below zero")
    credits_used: int


class RecordUsagesOut(Wire):
    items: list[RecordedUsageOut] = Field(description="One per event, in the request's order")
    recorded: int = Field(description="Events recorded and debited by this call")
    duplicates: int
    overdrawn: int = Field(description="Events of this call that overdrew their account")


@rest(body=RecordUsagesIn, response=RecordUsagesOut, auth="service")
async def record_usages(call: Call) -> RecordUsagesOut:
    """Record inference usage and debit the paying accounts (service token only)."""
    results = await usage.record_usages(call.ctx, [e.event() for e in call.body.events])
    fresh = [r for r in results if not r.duplicate]
    return RecordUsagesOut(
        items=[
            RecordedUsageOut(
                id=r.id,
                generation_id=r.generation_id,
                duplicate=r.duplicate,
                overdrawn=r.overdrawn,
                credits_used=r.credits_used,
            )
            for r in results
        ],
        recorded=len(fresh),
        duplicates=len(results) - len(fresh),
        overdrawn=sum(1 for r in fresh if r.overdrawn),
    )
