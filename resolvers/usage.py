"""Usage metering: ingest inference events with their debit, and answer who used what, when."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    Date,
    String,
    any_,
    cast,
    distinct,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from gateway.billing import ledger
from gateway.billing.payments import maybe_auto_top_up
from gateway.context import Context
from gateway.db.models import (
    Account,
    AccountKind,
    Member,
    Organization,
    UsageRecord,
    User,
    utcnow,
)
from gateway.errors import Conflict, Forbidden, NotFound, Unprocessable, ValidationFailed
from gateway.ids import new_id
from gateway.inputs import range_message
from gateway.jsoncodec import dump_json
from resolvers import permissions
from resolvers.batching import load_each
from resolvers.pagination import Page, PageArgs

log = logging.getLogger("gateway.usage")

MAX_EVENTS_PER_BATCH = 1000
MAX_METADATA_BYTES = 16_384
MAX_COUNT = 2**62
# An event may be stamped a little ahead of our clock (clock skew), not more.
MAX_CLOCK_SKEW = timedelta(minutes=5)
DEFAULT_PERIOD = timedelta(days=30)
# "At most one year": 366 days, so a leap year's 1 January..31 December fits.
MAX_PERIOD = timedelta(days=366)
TOP_MODELS = 5
MICRO = 1_000_000
USAGE_LEDGER_REASON = "usage"
# The ledger's idempotency key is `usage:<generation id>`, at most 255 characters.
MAX_GENERATION_ID = 255 - len("usage:")
# Concurrent batches carrying the same new generation id: the loser retries and sees a duplicate.
_INGEST_ATTEMPTS = 3

GroupBy = Literal["day", "model", "member"]
GROUP_BYS: tuple[GroupBy, ...] = ("day", "model", "member")


# ---------------------------------------------------------------------------------------------
# Ingestion


@dataclass(frozen=True)
class UsageEvent:
    """One inference as the inference service reports it (plain values, validated here)."""

    generation_id: str
    provider: str
    model: str
    model_type: str
    user_id: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int | None = None
    cost_usd: float = 0.0
    # Micro-credits charged to the paying account.
    credits: int = 0
    organization_id: str | None = None
    operation: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True)
class RecordedUsage:
    """The outcome for one event: its row (the first one for a retried event)."""

    # The stored row, or the values just inserted (a model is only built if asked for).
    row: UsageRecord | dict[str, Any]
    # True when this generation id was already recorded: nothing was written or debited again.
    duplicate: bool

    def _get(self, name: str) -> Any:
        return self.row[name] if isinstance(self.row, dict) else getattr(self.row, name)

    @property
    def id(self) -> str:
        return str(self._get("id"))

    @property
    def generation_id(self) -> str:
        return str(self._get("generation_id"))

    @property
    def credits_used(self) -> int:
        return int(self._get("credits_used"))

    @property
    def overdrawn(self) -> bool:
        return bool(self._get("overdrawn"))

    @property
    def usage(self) -> UsageRecord:
        return self.row if isinstance(self.row, UsageRecord) else UsageRecord(**self.row)


def _where(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _text(value: Any, where: str, *, maximum: int, required: bool = True) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(f"{where} must be a string", field=where)
    value = value.strip()
    if required and not value:
        raise ValidationFailed(f"{where} is required", field=where)
    if len(value) > maximum:
        raise ValidationFailed(f"{where} must be at most {maximum} characters", field=where)
    return value


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"{where} must be an integer", field=where)
    if not 0 <= value < MAX_COUNT:
        raise ValidationFailed(range_message(where, 0, MAX_COUNT - 1), field=where)
    return value


def _micro_usd(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationFailed(f"{where} must be a number", field=where)
    if not math.isfinite(value) or value < 0 or value >= MAX_COUNT / MICRO:
        raise ValidationFailed(f"{where} must be a finite amount, zero or more", field=where)
    # Through the decimal text, so 0.000123 USD is exactly 123 micro-USD.
    return int((Decimal(repr(value)) * MICRO).to_integral_value())


def _clean(event: UsageEvent, prefix: str, now: datetime) -> dict[str, Any]:
    """The event as a usage row (without account and overdraft), or a ValidationFailed."""
    prompt = _count(event.prompt_tokens, _where(prefix, "promptTokens"))
    completion = _count(event.completion_tokens, _where(prefix, "completionTokens"))
    total = (
        prompt + completion
        if event.total_tokens is None
        else _count(event.total_tokens, _where(prefix, "totalTokens"))
    )
    metadata = event.metadata if event.metadata is not None else {}
    if not isinstance(metadata, dict):
        raise ValidationFailed(
            f"{_where(prefix, 'metadata')} must be an object", field=_where(prefix, "metadata")
        )
    if len(dump_json(metadata)) > MAX_METADATA_BYTES:
        raise ValidationFailed(
            f"{_where(prefix, 'metadata')} must be at most {MAX_METADATA_BYTES} bytes of JSON",
            field=_where(prefix, "metadata"),
        )
    created_at = event.created_at or now
    if created_at.tzinfo is None:
        raise ValidationFailed(
            f"{_where(prefix, 'createdAt')} needs a timezone", field=_where(prefix, "createdAt")
        )
    created_at = created_at.astimezone(UTC)
    if created_at > now + MAX_CLOCK_SKEW:
        raise ValidationFailed(
            f"{_where(prefix, 'createdAt')} is in the future", field=_where(prefix, "createdAt")
        )
    operation = _text(
        event.operation or "", _where(prefix, "operation"), maximum=100, required=False
    )
    organization_id = _text(
        event.organization_id or "", _where(prefix, "organizationId"), maximum=30, required=False
    )
    return {
        "id": new_id("usg", at=created_at),
        "generation_id": _text(
            event.generation_id, _where(prefix, "generationId"), maximum=MAX_GENERATION_ID
        ),
        "user_id": _text(event.user_id, _where(prefix, "userId"), maximum=30),
        "organization_id": organization_id or None,
        "provider_name": _text(event.provider, _where(prefix, "provider"), maximum=100),
        "model_name": _text(event.model, _where(prefix, "model"), maximum=200),
        "model_type_name": _text(event.model_type, _where(prefix, "modelType"), maximum=100),
        "operation": operation or None,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
        "cost_micro_usd": _micro_usd(event.cost_usd, _where(prefix, "costUsd")),
        "credits_used": _count(event.credits, _where(prefix, "credits")),
        "metadata_": metadata,
        "overdrawn": False,
        "created_at": created_at,
    }


async def record_usage(ctx: Context, event: UsageEvent) -> RecordedUsage:
    """Record one event and debit its paying account (service token only)."""
    permissions.require_service(ctx)
    return (await _ingest(ctx, [event], single=True))[0]


async def record_usages(ctx: Context, events: Sequence[UsageEvent]) -> list[RecordedUsage]:
    """Record a batch in one transaction, all or nothing; results follow the events' order."""
    permissions.require_service(ctx)
    if not events:
        raise ValidationFailed("events must list at least one event", field="events")
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise ValidationFailed(
            f"events can list at most {MAX_EVENTS_PER_BATCH} events per call", field="events"
        )
    return await _ingest(ctx, events, single=False)


async def _ingest(
    ctx: Context, events: Sequence[UsageEvent], *, single: bool
) -> list[RecordedUsage]:
    now = utcnow()
    rows = [_clean(event, "" if single else f"events[{i}]", now) for i, event in enumerate(events)]
    for attempt in range(_INGEST_ATTEMPTS):
        try:
            results, low = await _write(ctx.session, rows, now, single=single)
            await ctx.session.commit()
        except IntegrityError:
            # Another writer committed one of these generation ids first: start over, and the
            # second look finds its rows as duplicates.
            await ctx.session.rollback()
            if attempt == _INGEST_ATTEMPTS - 1:
                raise Conflict(
                    "These usage events conflict with a concurrent write; retry the call"
                ) from None
            continue
        await _start_auto_top_ups(ctx, low)
        return results
    raise AssertionError("unreachable")


async def _start_auto_top_ups(ctx: Context, account_ids: list[str]) -> None:
    """After the debits are committed: top up the accounts that fell below their threshold.

    A failing top-up is logged, never the ingestion's failure: the usage is recorded already.
    """
    for account_id in account_ids:
        try:
            await maybe_auto_top_up(ctx, account_id)
        except Exception:
            log.exception("auto top-up of account %s after usage failed", account_id)
            await ctx.session.rollback()


def _chunks(values: Sequence[Any], size: int = 500) -> list[Sequence[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _postgres(session: AsyncSession) -> bool:
    return bool(session.bind.dialect.name == "postgresql")


def _one_of(session: AsyncSession, column: Any, values: Sequence[str]) -> Any:
    """`column IN (…)`; on PostgreSQL `= ANY($1)` with one array parameter, so the statement's
    text (and its prepared plan) is the same for any number of values."""
    if _postgres(session):
        return column == any_(literal(list(values), ARRAY(String())))
    return col(column).in_(values)


async def _write(
    session: AsyncSession, rows: list[dict[str, Any]], now: datetime, *, single: bool
) -> tuple[list[RecordedUsage], list[str]]:
    """The outcome per event, and the accounts that fell below their auto top-up threshold."""
    # The first event carrying a generation id counts; later ones in the batch are duplicates.
    first_index: dict[str, int] = {}
    for i, row in enumerate(rows):
        first_index.setdefault(row["generation_id"], i)
    # Ids first (cheap, and usually none match); whole rows only for the duplicates.
    seen: list[str] = []
    for chunk in _chunks(list(first_index)):
        stmt = select(UsageRecord.generation_id).where(
            _one_of(session, UsageRecord.generation_id, chunk)
        )
        seen += (await session.execute(stmt)).scalars()
    existing: dict[str, UsageRecord] = {}
    for chunk in _chunks(seen):
        stmt = select(UsageRecord).where(_one_of(session, UsageRecord.generation_id, chunk))
        for record in (await session.execute(stmt)).scalars():
            existing[record.generation_id] = record
    fresh = [(i, rows[i]) for gen, i in first_index.items() if gen not in existing]
    low: list[str] = []
    if fresh:
        await _attach_accounts(session, fresh, single=single)
        low = await _debit_and_insert(session, [row for _, row in fresh])
    recorded: dict[str, UsageRecord | dict[str, Any]] = dict(existing)
    for _, row in fresh:
        recorded[row["generation_id"]] = row
    results = [
        RecordedUsage(
            row=recorded[row["generation_id"]],
            duplicate=row["generation_id"] in existing or first_index[row["generation_id"]] != i,
        )
        for i, row in enumerate(rows)
    ]
    return results, low


async def _attach_accounts(
    session: AsyncSession, fresh: list[tuple[int, dict[str, Any]]], *, single: bool
) -> None:
    """Set each row's paying account: the organization's (the user must be a member of it) or
    the user's own. Users, organizations and their accounts come in one query each."""

    def where(i: int, name: str) -> str:
        return name if single else f"events[{i}].{name}"

    user_ids = list({row["user_id"] for _, row in fresh})
    org_ids = list({row["organization_id"] for _, row in fresh if row["organization_id"]})
    # live user or organization id -> its account id (None when it has none yet)
    user_accounts: dict[str, str | None] = {}
    for chunk in _chunks(user_ids):
        found = await session.execute(
            select(User.id, Account.id)
            .outerjoin(Account, Account.user_id == User.id)
            .where(_one_of(session, User.id, chunk), User.deleted_at.is_(None))
        )
        user_accounts.update(found.all())
    org_accounts: dict[str, str | None] = {}
    memberships: set[tuple[str, str]] = set()
    for chunk in _chunks(org_ids):
        found = await session.execute(
            select(Organization.id, Account.id)
            .outerjoin(Account, Account.organization_id == Organization.id)
            .where(_one_of(session, Organization.id, chunk), Organization.deleted_at.is_(None))
        )
        org_accounts.update(found.all())
        pairs = await session.execute(
            select(Member.organization_id, Member.user_id).where(
                _one_of(session, Member.organization_id, chunk),
                _one_of(session, Member.user_id, user_ids),
            )
        )
        memberships.update((org, user) for org, user in pairs.all())
    for i, row in fresh:
        if row["user_id"] not in user_accounts:
            raise Unprocessable(f"{where(i, 'userId')}: user not found", field=where(i, "userId"))
        org_id = row["organization_id"]
        if org_id is not None:
            if org_id not in org_accounts:
                raise Unprocessable(
                    f"{where(i, 'organizationId')}: organization not found",
                    field=where(i, "organizationId"),
                )
            if (org_id, row["user_id"]) not in memberships:
                raise Unprocessable(
                    f"{where(i, 'organizationId')}: the user is not a member of this organization",
                    field=where(i, "organizationId"),
                )
    opened = False
    for _, row in fresh:
        org_id = row["organization_id"]
        accounts = org_accounts if org_id else user_accounts
        owner = org_id or row["user_id"]
        if accounts[owner] is None:
            # A payer without a billing account yet (created outside the usual paths): open it.
            account = (
                Account(kind=AccountKind.ORGANIZATION.value, organization_id=owner)
                if org_id
                else Account(kind=AccountKind.USER.value, user_id=owner)
            )
            session.add(account)
            accounts[owner] = account.id
            opened = True
        row["account_id"] = accounts[owner]
    if opened:
        await session.flush()


async def _debit_and_insert(session: AsyncSession, rows: list[dict[str, Any]]) -> list[str]:
    """Debit the paying accounts through the ledger (one entry per charged event, key
    `usage:<generation id>`) and write the usage rows, flagging the events that overdrew;
    returns the accounts now below their auto top-up threshold."""
    charged = [row for row in rows if row["credits_used"] > 0]
    posted = await ledger.post_debits(
        session,
        [
            ledger.Debit(
                account_id=row["account_id"],
                amount=row["credits_used"],
                idempotency_key=f"usage:{row['generation_id']}",
                reference_id=row["id"],
            )
            for row in charged
        ],
        reason=USAGE_LEDGER_REASON,
    )
    for row, balance_after in zip(charged, posted.balances_after, strict=True):
        row["overdrawn"] = balance_after < 0
    await _insert_usage_rows(session, rows)
    return posted.below_threshold


# Core inserts of whole batches: one multi-row statement per 1,000 rows. (The ORM's bulk insert
# would split the batch wherever a nullable column switches between NULL and a value.)
_COLUMN_OF = {"metadata_": "metadata"}


async def _insert_usage_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    table = SQLModel.metadata.tables[UsageRecord.__tablename__]
    columns = [{_COLUMN_OF.get(key, key): value for key, value in row.items()} for row in rows]
    await session.execute(insert(table), columns)


# ---------------------------------------------------------------------------------------------
# History


async def user_usages_page(ctx: Context, user_id: str, args: PageArgs) -> Page[UsageRecord]:
    """The caller's own usage (personal and in organizations), newest first."""
    permissions.require_self(ctx, user_id)
    # Only ever the caller's own pages: nothing to batch with (`fetch`, not `load`).
    page: Page[UsageRecord] = await ctx.loaders.usage_pages_by_user_id.fetch((user_id, args))
    return page


async def visible_user_usages(
    ctx: Context, user_id: str, args: PageArgs
) -> Page[UsageRecord] | None:
    """`User.usages`: the viewer's own history; None on anyone else."""
    if not permissions.owns_personal_account(ctx, user_id):
        return None
    return await user_usages_page(ctx, user_id, args)


@dataclass
class MemberUsages:
    member: Member
    user: User | None
    page: Page[UsageRecord]


async def member_usages_page(
    ctx: Context, organization_id: str, member_id: str, args: PageArgs
) -> MemberUsages:
    """A member's usage in the organization: for owners, admins, and the member themself."""
    # The caller's membership, and the member with its user, in one statement.
    await permissions.prefetch_membership_and_member(ctx, organization_id, member_id)
    viewer = await permissions.require_member(ctx, organization_id)
    found: tuple[Member, User | None] | None = await ctx.loaders.member_with_user_by_id.fetch(
        member_id
    )
    if found is None or found[0].organization_id != organization_id:
        raise NotFound("Member not found")
    member, user = found
    if not permissions.may_see_member_usage(viewer, member):
        raise Forbidden("Only organization owners and admins can see other members' usage")
    page: Page[UsageRecord] = await ctx.loaders.usage_pages_by_member.fetch(
        (organization_id, member.user_id, args)
    )
    return MemberUsages(member=member, user=user, page=page)


async def visible_member_usages(
    ctx: Context, members: Sequence[Member], args: PageArgs
) -> list[Page[UsageRecord] | Exception | None]:
    """`Member.usages` of a level's members: each one's page, or None where the viewer may not
    see it (one statement for all the pages; the viewer's memberships are usually cached)."""
    viewers = await permissions.organization_memberships(
        ctx, [member.organization_id for member in members]
    )
    visible = [permissions.may_see_member_usage(viewers[m.organization_id], m) for m in members]
    pages = iter(
        await load_each(
            ctx.loaders.usage_pages_by_member,
            [
                (m.organization_id, m.user_id, args)
                for m, seen in zip(members, visible, strict=True)
                if seen
            ],
        )
    )
    return [next(pages) if seen else None for seen in visible]


async def organization_usages_page(
    ctx: Context, organization_id: str, args: PageArgs
) -> Page[UsageRecord]:
    """Every usage billed in the organization, newest first (owners and admins)."""
    await permissions.require_manager(ctx, organization_id)
    page: Page[UsageRecord] = await ctx.loaders.usage_pages_by_organization_id.load(
        (organization_id, args)
    )
    return page


async def get_usage(ctx: Context, usage_id: str) -> UsageRecord | None:
    """`node(id:)`: a usage that a field shows the caller: their own history (`User.usages`,
    not through an organization's API key), or usage in an organization they belong to that
    `Member.usages` shows them (their own, or anyone's for owners and admins)."""
    usage: UsageRecord | None = await ctx.loaders.usage_by_id.load(usage_id)
    if usage is None or ctx.principal is None:
        return None
    if permissions.may_use_personal_account(ctx, usage.user_id):
        return usage
    if usage.organization_id is None:
        return None
    viewer = await permissions.organization_membership(ctx, usage.organization_id)
    if viewer is None:
        return None
    return usage if viewer.user_id == usage.user_id or viewer.role in permissions.MANAGERS else None


# ---------------------------------------------------------------------------------------------
# Aggregation


@dataclass
class UsageTotals:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    credits_used: int = 0
    cost_micro_usd: int = 0

    @property
    def cost_usd(self) -> float:
        return self.cost_micro_usd / MICRO

    def add(self, other: UsageTotals) -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.total_tokens += other.total_tokens
        self.credits_used += other.credits_used
        self.cost_micro_usd += other.cost_micro_usd


@dataclass
class UsageBucket(UsageTotals):
    # The day (YYYY-MM-DD), the model name, or the member id (the user id of a former member).
    key: str = ""


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


def resolve_period(
    start: datetime | date | None, end: datetime | date | None, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """[from, to): by default the last 30 days; from ≤ to and at most one year apart."""
    resolved_end = _end_of(end) if end is not None else (now or utcnow())
    resolved_start = _start_of(start) if start is not None else resolved_end - DEFAULT_PERIOD
    if resolved_start > resolved_end:
        raise ValidationFailed("from must not be after to", field="from")
    if resolved_end - resolved_start > MAX_PERIOD:
        raise ValidationFailed("The period can be at most one year", field="to")
    return resolved_start, resolved_end


def _sums() -> list[Any]:
    zero = 0
    return [
        func.count().label("requests"),
        func.coalesce(func.sum(UsageRecord.prompt_tokens), zero).label("prompt_tokens"),
        func.coalesce(func.sum(UsageRecord.completion_tokens), zero).label("completion_tokens"),
        func.coalesce(func.sum(UsageRecord.total_tokens), zero).label("total_tokens"),
        func.coalesce(func.sum(UsageRecord.credits_used), zero).label("credits_used"),
        func.coalesce(func.sum(UsageRecord.cost_micro_usd), zero).label("cost_micro_usd"),
    ]


def _totals(row: Any) -> UsageTotals:
    return UsageTotals(
        requests=int(row.requests),
        prompt_tokens=int(row.prompt_tokens),
        completion_tokens=int(row.completion_tokens),
        total_tokens=int(row.total_tokens),
        credits_used=int(row.credits_used),
        cost_micro_usd=int(row.cost_micro_usd),
    )


def _in_period(organization_id: str, start: datetime, end: datetime) -> list[Any]:
    return [
        UsageRecord.organization_id == organization_id,
        UsageRecord.created_at >= start,
        UsageRecord.created_at < end,
    ]


def _day_of(session: AsyncSession) -> Any:
    """The UTC calendar day of `created_at`: SQLite stores UTC text, PostgreSQL a timestamptz."""
    if _postgres(session):
        return cast(func.timezone("UTC", UsageRecord.created_at), Date)
    return func.date(UsageRecord.created_at)


async def organization_usage_summary(
    ctx: Context,
    organization_id: str,
    *,
    start: datetime | date | None = None,
    end: datetime | date | None = None,
    group_by: str = "day",
) -> UsageSummary:
    """Totals per day, model or member over [from, to) (owners and admins)."""
    if group_by not in GROUP_BYS:
        raise ValidationFailed("groupBy must be one of day, model, member", field="groupBy")
    period = resolve_period(start, end, ctx.now)
    await permissions.require_manager(ctx, organization_id)
    session = ctx.session
    key: Any = {
        "day": _day_of(session),
        "model": UsageRecord.model_name,
        "member": UsageRecord.user_id,
    }[group_by]
    stmt = (
        select(key.label("key"), *_sums())
        .where(*_in_period(organization_id, *period))
        .group_by(key)
    )
    items = []
    for row in (await session.execute(stmt)).all():
        bucket = UsageBucket(**vars(_totals(row)), key=str(row.key))
        items.append(bucket)
    if group_by == "member" and items:
        member_ids: dict[str, str] = dict(
            (
                await session.execute(
                    select(Member.user_id, Member.id).where(
                        Member.organization_id == organization_id,
                        col(Member.user_id).in_([b.key for b in items]),
                    )
                )
            ).all()
        )
        for bucket in items:
            bucket.key = member_ids.get(bucket.key, bucket.key)
    if group_by == "day":
        items.sort(key=lambda b: b.key)
    else:
        items.sort(key=lambda b: (-b.credits_used, -b.requests, b.key))
    totals = UsageTotals()
    for bucket in items:
        totals.add(bucket)
    return UsageSummary(
        start=period[0],
        end=period[1],
        group_by=group_by,  # type: ignore[arg-type]
        items=items,
        totals=totals,
    )


async def organization_metrics(
    ctx: Context,
    organization_id: str,
    *,
    start: datetime | date | None = None,
    end: datetime | date | None = None,
) -> UsageMetrics:
    """Requests, tokens, credits, cost, active members and top models over a period."""
    period = resolve_period(start, end, ctx.now)
    await permissions.require_manager(ctx, organization_id)
    session = ctx.session
    in_period = _in_period(organization_id, *period)
    row = (
        await session.execute(
            select(*_sums(), func.count(distinct(UsageRecord.user_id)).label("active")).where(
                *in_period
            )
        )
    ).one()
    requests = func.count().label("requests")
    credits = func.coalesce(func.sum(UsageRecord.credits_used), 0).label("credits_used")
    top = await session.execute(
        select(UsageRecord.model_name, requests, credits)
        .where(*in_period)
        .group_by(UsageRecord.model_name)
        .order_by(requests.desc(), credits.desc(), UsageRecord.model_name)
        .limit(TOP_MODELS)
    )
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
