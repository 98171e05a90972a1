"""Usage ingestion: check inference events, record each generation id once, and debit the
paying accounts through the ledger in the same transaction."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from gateway.billing import ledger
from gateway.billing.payments import maybe_auto_top_up
from gateway.db.bulk import insert_rows
from gateway.db.models import UsageRecord, utcnow
from gateway.errors import Conflict, ValidationFailed
from gateway.ids import new_id
from gateway.inputs import range_message, trimmed
from gateway.jsoncodec import dump_json
from gateway.metrics import USAGE_EVENTS
from resolvers import permissions
from resolvers.context import Context
from resolvers.usage import rollups
from resolvers.usage.measures import MAX_COUNT, MICRO, TOKEN_COUNTS, camel
from resolvers.usage.payers import attach_accounts, chunks, core, one_of

log = logging.getLogger("gateway.usage")

MAX_EVENTS_PER_BATCH = 1000
MAX_METADATA_BYTES = 16_384
# An event may be stamped a little ahead of our clock (clock skew), not more.
MAX_CLOCK_SKEW = timedelta(minutes=5)
USAGE_LEDGER_REASON = "usage"
# The ledger's idempotency key is `usage:<generation id>`, at most 255 characters.
MAX_GENERATION_ID = 255 - len("usage:")
# Concurrent batches carrying the same new generation id: the loser retries and sees a duplicate.
_INGEST_ATTEMPTS = 3

# Each token count's name in the event and in its errors (`events[0].promptTokens`).
_TOKEN_KEYS = tuple((name, camel(name)) for name in TOKEN_COUNTS)


class EventInput(Protocol):
    """What either protocol's input for one event has (GraphQL's `RecordUsageInput`, REST's
    `UsageEventIn`), under the names of `UsageEvent`'s fields, and each of `TOKEN_COUNTS`."""

    @property
    def generation_id(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def model_type(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def total_tokens(self) -> int | None: ...
    @property
    def cost_usd(self) -> float: ...
    @property
    def credits(self) -> int: ...
    @property
    def organization_id(self) -> str | None: ...
    @property
    def operation(self) -> str | None: ...
    @property
    def metadata(self) -> object: ...
    @property
    def created_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class UsageEvent:
    """One inference as the inference service reports it (plain values, validated here)."""

    generation_id: str
    provider: str
    model: str
    model_type: str
    user_id: str
    # Each of `TOKEN_COUNTS` by name (an absent one is 0).
    tokens: Mapping[str, int] = field(default_factory=dict)
    total_tokens: int | None = None
    cost_usd: float = 0.0
    # Micro-credits charged to the paying account.
    credits: int = 0
    organization_id: str | None = None
    operation: str | None = None
    # A JSON object (anything else is refused by the checks).
    metadata: object = field(default_factory=dict)
    created_at: datetime | None = None

    @classmethod
    def of(cls, given: EventInput) -> UsageEvent:
        """The event that either protocol's input describes: the one builder of both."""
        return cls(
            generation_id=given.generation_id,
            provider=given.provider,
            model=given.model,
            model_type=given.model_type,
            user_id=str(given.user_id),
            tokens={name: getattr(given, name) for name in TOKEN_COUNTS},
            total_tokens=given.total_tokens,
            cost_usd=given.cost_usd,
            credits=given.credits,
            organization_id=str(given.organization_id) if given.organization_id else None,
            operation=given.operation,
            metadata=given.metadata if given.metadata is not None else {},
            created_at=given.created_at,
        )


# A usage row's column values by attribute name, as checked and inserted: what SQLAlchemy's
# multi-row insert takes (`_insert_usage_rows`).
UsageValues = dict[str, Any]


@dataclass(frozen=True)
class RecordedUsage:
    """The outcome for one event: its row (the first one for a retried event)."""

    # The stored row, or the values just inserted (a model is only built if asked for).
    row: UsageRecord | UsageValues
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


def _text(value: object, where: str, *, maximum: int, required: bool = True) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(f"{where} must be a string", field=where)
    value = trimmed(value, where, maximum)
    if required and not value:
        raise ValidationFailed(f"{where} is required", field=where)
    return value


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"{where} must be an integer", field=where)
    if not 0 <= value < MAX_COUNT:
        raise ValidationFailed(range_message(where, 0, MAX_COUNT - 1), field=where)
    return value


def _micro_usd(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationFailed(f"{where} must be a number", field=where)
    if not math.isfinite(value) or value < 0 or value >= MAX_COUNT / MICRO:
        raise ValidationFailed(f"{where} must be a finite amount, zero or more", field=where)
    # Through the decimal text, so 0.000123 USD is exactly 123 micro-USD.
    return int((Decimal(repr(value)) * MICRO).to_integral_value())


def _clean(event: UsageEvent, prefix: str, now: datetime) -> UsageValues:
    """The event as a usage row (without account and overdraft), or a ValidationFailed."""
    tokens = {
        name: _count(event.tokens.get(name, 0), _where(prefix, key)) for name, key in _TOKEN_KEYS
    }
    total = (
        sum(tokens.values())
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
        **tokens,
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
        duplicates = sum(result.duplicate for result in results)
        USAGE_EVENTS.labels("recorded").inc(len(results) - duplicates)
        USAGE_EVENTS.labels("duplicate").inc(duplicates)
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


async def _write(
    session: AsyncSession, rows: list[UsageValues], now: datetime, *, single: bool
) -> tuple[list[RecordedUsage], list[str]]:
    """The outcome per event, and the accounts that fell below their auto top-up threshold."""
    # The first event carrying a generation id counts; later ones in the batch are duplicates.
    first_index: dict[str, int] = {}
    for i, row in enumerate(rows):
        first_index.setdefault(row["generation_id"], i)
    # Ids first (cheap, and usually none match); whole rows only for the duplicates.
    seen: list[str] = []
    for chunk in chunks(session, list(first_index)):
        ids = select(col(UsageRecord.generation_id)).where(
            one_of(session, col(UsageRecord.generation_id), chunk)
        )
        seen += (await core(session, ids)).scalars()
    existing: dict[str, UsageRecord] = {}
    for chunk in chunks(session, seen):
        stmt = select(UsageRecord).where(one_of(session, col(UsageRecord.generation_id), chunk))
        for record in (await session.execute(stmt)).scalars():
            existing[record.generation_id] = record
    fresh = [(i, rows[i]) for gen, i in first_index.items() if gen not in existing]
    low: list[str] = []
    if fresh:
        await attach_accounts(session, fresh, single=single)
        low = await _debit_and_insert(session, [row for _, row in fresh])
    recorded: dict[str, UsageRecord | UsageValues] = dict(existing)
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


async def _debit_and_insert(session: AsyncSession, rows: list[UsageValues]) -> list[str]:
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
    await rollups.add_usage(session, rows)
    return posted.below_threshold


# A usage row's keys are UsageRecord's attribute names; a column named otherwise by its key.
_KEY_OF_COLUMN = {"metadata": "metadata_"}


async def _insert_usage_rows(session: AsyncSession, rows: list[UsageValues]) -> None:
    """One statement for the whole batch (`insert_rows`: arrays on PostgreSQL)."""
    table = SQLModel.metadata.tables[UsageRecord.__tablename__]
    await insert_rows(session, table, rows, keys=_KEY_OF_COLUMN)
