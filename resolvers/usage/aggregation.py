"""Usage aggregation: totals per day, model or member over a period, and an organization's
activity metrics; the measures summed are `measures.TOTALS`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Label,
    Row,
    Select,
    SQLColumnExpression,
    Subquery,
    distinct,
    func,
    select,
)
from sqlalchemy.orm import Mapped
from sqlmodel import col

from gateway.db.models import Member, UsageRecord, utcnow
from gateway.errors import ValidationFailed
from resolvers.permissions import ManagerAccess
from resolvers.usage.measures import MICRO, SUMMED, TOTALS
from resolvers.usage.rollups import day_of, period_rows

DEFAULT_PERIOD = timedelta(days=30)
# "At most one year": 366 days, so a leap year's 1 January..31 December fits.
MAX_PERIOD = timedelta(days=366)
TOP_MODELS = 5

GroupBy = Literal["day", "model", "member"]
GROUP_BYS: tuple[GroupBy, ...] = ("day", "model", "member")
_GROUP_BY: dict[str, GroupBy] = {name: name for name in GROUP_BYS}
# The roll-up column each grouping reads (`rollups.GROUPABLE`).
_GROUPED_BY: dict[GroupBy, str] = {"day": "day", "model": "model_name", "member": "user_id"}


class UsageTotals:
    """Sums over usage rows: each of `TOTALS` by name in `sums` (rows counted, then the
    summed columns), with the ones aggregation itself reads as properties."""

    def __init__(self, sums: Mapping[str, int] | None = None) -> None:
        self.sums = {name: int(sums[name]) if sums is not None else 0 for name in TOTALS}

    @property
    def requests(self) -> int:
        return self.sums["requests"]

    @property
    def credits_used(self) -> int:
        return self.sums["credits_used"]

    @property
    def cost_usd(self) -> float:
        return self.sums["cost_micro_usd"] / MICRO

    def add(self, other: UsageTotals) -> None:
        for name, value in other.sums.items():
            self.sums[name] += value


@dataclass
class UsageBucket:
    # The day (YYYY-MM-DD), the model name, or the member id (the user id of a former member).
    key: str
    totals: UsageTotals


@dataclass
class UsageSummary:
    start: datetime
    end: datetime
    group_by: GroupBy
    items: list[UsageBucket]
    totals: UsageTotals


@dataclass
class ModelUsage:
    model_name: str
    requests: int
    credits_used: int


@dataclass
class UsageMetrics:
    start: datetime
    end: datetime
    totals: UsageTotals
    active_members: int
    top_models: list[ModelUsage]


def _start_of(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationFailed("from needs a timezone (use Z for UTC)", field="from")
        return value.astimezone(UTC)
    return datetime.combine(value, time.min, tzinfo=UTC)


def _end_of(value: datetime | date) -> datetime:
    """A date `to` includes that whole day; a timestamp `to` is the exclusive end."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationFailed("to needs a timezone (use Z for UTC)", field="to")
        return value.astimezone(UTC)
    return datetime.combine(value + timedelta(days=1), time.min, tzinfo=UTC)


Period = tuple[datetime, datetime]


def resolve_period(
    start: datetime | date | None, end: datetime | date | None, now: datetime | None = None
) -> Period:
    """[from, to): by default the last 30 days; from ≤ to and at most one year apart. Callers
    resolve it before the caller's access is checked: a bad period is a 400 for anyone."""
    resolved_end = _end_of(end) if end is not None else (now or utcnow())
    resolved_start = _start_of(start) if start is not None else resolved_end - DEFAULT_PERIOD
    if resolved_start > resolved_end:
        raise ValidationFailed("from must not be after to", field="from")
    if resolved_end - resolved_start > MAX_PERIOD:
        raise ValidationFailed("The period can be at most one year", field="to")
    return resolved_start, resolved_end


def _sums() -> list[Label[int]]:
    """`TOTALS` as labelled SQL aggregates: the rows counted, then each summed column."""
    return [
        func.count().label("requests"),
        *(func.coalesce(func.sum(_column(name)), 0).label(name) for name in SUMMED),
    ]


def _column(name: str) -> Mapped[int]:
    column: Mapped[int] = col(getattr(UsageRecord, name))
    return column


def _totals(row: Row[*tuple[Any, ...]]) -> UsageTotals:
    """The totals of a row that selected `_sums()` (their labels are `TOTALS`)."""
    return UsageTotals({name: row._mapping[name] for name in TOTALS})


def _in_period(organization_id: str, start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    return [
        col(UsageRecord.organization_id) == organization_id,
        col(UsageRecord.created_at) >= start,
        col(UsageRecord.created_at) < end,
    ]


class AggregationMismatch(RuntimeError):
    """`usage_aggregation = verify`: the roll-ups and the raw rows gave different answers."""


def _mode(access: ManagerAccess) -> str:
    return access.ctx.settings.usage_aggregation


def _summed(rows: Subquery) -> list[Label[int]]:
    """`TOTALS` summed over `rollups.period_rows` (whose requests are counts already)."""
    return [func.coalesce(func.sum(rows.c[name]), 0).label(name) for name in TOTALS]


async def organization_usage_summary(
    access: ManagerAccess, period: Period, *, group_by: str = "day"
) -> UsageSummary:
    """Totals per day, model or member over `period` (owners and admins)."""
    chosen = _GROUP_BY.get(group_by)
    if chosen is None:
        raise ValidationFailed("groupBy must be one of day, model, member", field="groupBy")
    mode = _mode(access)
    if mode == "verify":
        raw = await _summary(access, period, chosen, rollups=False)
        found = await _summary(access, period, chosen, rollups=True)
        if _summary_answer(raw) != _summary_answer(found):
            raise AggregationMismatch(
                f"usage summary by {chosen} over {period}: roll-ups {_summary_answer(found)}"
                f" != raw rows {_summary_answer(raw)}"
            )
        return found
    return await _summary(access, period, chosen, rollups=mode == "rollups")


def _summary_answer(summary: UsageSummary) -> list[tuple[str, dict[str, int]]]:
    return [(b.key, b.totals.sums) for b in summary.items] + [("", summary.totals.sums)]


async def _summary(
    access: ManagerAccess, period: Period, chosen: GroupBy, *, rollups: bool
) -> UsageSummary:
    ctx, organization_id = access.ctx, access.organization_id
    session = ctx.session
    stmt: Select[*tuple[Any, ...]]
    if rollups:
        name = _GROUPED_BY[chosen]
        rows = period_rows(session, organization_id, *period, [name])
        stmt = select(rows.c[name].label("key"), *_summed(rows)).group_by(rows.c[name])
    else:
        key: SQLColumnExpression[Any] = {
            "day": day_of(session),
            "model": col(UsageRecord.model_name),
            "member": col(UsageRecord.user_id),
        }[chosen]
        stmt = (
            select(key.label("key"), *_sums())
            .where(*_in_period(organization_id, *period))
            .group_by(key)
        )
    items = [
        UsageBucket(key=str(row.key), totals=_totals(row))
        for row in (await session.execute(stmt)).all()
    ]
    if chosen == "member" and items:
        member_ids: dict[str, str] = dict(
            (
                await session.execute(
                    select(col(Member.user_id), col(Member.id)).where(
                        col(Member.organization_id) == organization_id,
                        col(Member.user_id).in_([b.key for b in items]),
                    )
                )
            ).all()
        )
        for bucket in items:
            bucket.key = member_ids.get(bucket.key, bucket.key)
    if chosen == "day":
        items.sort(key=lambda b: b.key)
    else:
        items.sort(key=lambda b: (-b.totals.credits_used, -b.totals.requests, b.key))
    totals = UsageTotals()
    for bucket in items:
        totals.add(bucket.totals)
    return UsageSummary(
        start=period[0],
        end=period[1],
        group_by=chosen,
        items=items,
        totals=totals,
    )


async def organization_metrics(access: ManagerAccess, period: Period) -> UsageMetrics:
    """Requests, tokens, credits, cost, active members and top models over a period."""
    mode = _mode(access)
    if mode == "verify":
        raw = await _metrics(access, period, rollups=False)
        found = await _metrics(access, period, rollups=True)
        if _metrics_answer(raw) != _metrics_answer(found):
            raise AggregationMismatch(
                f"usage metrics over {period}: roll-ups {_metrics_answer(found)}"
                f" != raw rows {_metrics_answer(raw)}"
            )
        return found
    return await _metrics(access, period, rollups=mode == "rollups")


def _metrics_answer(metrics: UsageMetrics) -> tuple[object, ...]:
    return (metrics.totals.sums, metrics.active_members, metrics.top_models)


async def _metrics(access: ManagerAccess, period: Period, *, rollups: bool) -> UsageMetrics:
    ctx, organization_id = access.ctx, access.organization_id
    session = ctx.session
    totals_stmt: Select[*tuple[Any, ...]]
    top_stmt: Select[*tuple[Any, ...]]
    if rollups:
        by_user = period_rows(session, organization_id, *period, ["user_id"])
        totals_stmt = select(
            *_summed(by_user), func.count(distinct(by_user.c.user_id)).label("active")
        )
        by_model = period_rows(session, organization_id, *period, ["model_name"])
        model_name: SQLColumnExpression[str] = by_model.c.model_name
        requests = func.coalesce(func.sum(by_model.c.requests), 0).label("requests")
        credits = func.coalesce(func.sum(by_model.c.credits_used), 0).label("credits_used")
        top_from: list[ColumnElement[bool]] = []
    else:
        top_from = _in_period(organization_id, *period)
        totals_stmt = select(
            *_sums(), func.count(distinct(col(UsageRecord.user_id))).label("active")
        ).where(*top_from)
        model_name = col(UsageRecord.model_name)
        requests = func.count().label("requests")
        credits = func.coalesce(func.sum(col(UsageRecord.credits_used)), 0).label("credits_used")
    row = (await session.execute(totals_stmt)).one()
    top_stmt = (
        select(model_name, requests, credits)
        .where(*top_from)
        .group_by(model_name)
        .order_by(requests.desc(), credits.desc(), model_name)
        .limit(TOP_MODELS)
    )
    top = await session.execute(top_stmt)
    return UsageMetrics(
        start=period[0],
        end=period[1],
        totals=_totals(row),
        active_members=int(row.active),
        top_models=[
            ModelUsage(model_name=name, requests=int(n), credits_used=int(c))
            for name, n, c in top.all()
        ],
    )
