"""Keyset pagination on ULID ids: opaque cursors, hard page-size cap, one query per level."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from gateway.errors import ValidationFailed

T = TypeVar("T")

_CURSOR_TAG = "c1:"


def encode_cursor(item_id: str) -> str:
    return base64.urlsafe_b64encode((_CURSOR_TAG + item_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, field_name: str = "cursor") -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw.startswith(_CURSOR_TAG) or len(raw) > 64:
        raise ValidationFailed(f"Invalid {field_name}", field=field_name)
    return raw[len(_CURSOR_TAG) :]


@dataclass(frozen=True)
class PageArgs:
    """Relay arguments, validated; hashable so a loader can batch parents sharing them."""

    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None

    @classmethod
    def build(
        cls,
        *,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        default: int,
        maximum: int,
    ) -> PageArgs:
        if first is not None and last is not None:
            raise ValidationFailed("Pass either first or last, not both", field="first")
        for name, value in (("first", first), ("last", last)):
            if value is not None and not 0 <= value <= maximum:
                raise ValidationFailed(f"{name} must be between 0 and {maximum}", field=name)
        if first is None and last is None:
            first = default
        return cls(
            first=first,
            after=decode_cursor(after, field_name="after") if after else None,
            last=last,
            before=decode_cursor(before, field_name="before") if before else None,
        )

    @property
    def limit(self) -> int:
        return self.last if self.last is not None else (self.first or 0)

    @property
    def backwards(self) -> bool:
        return self.last is not None


@dataclass
class Page(Generic[T]):
    items: list[T]
    has_next_page: bool = False
    has_previous_page: bool = False
    cursors: list[str] = field(default_factory=list)

    @property
    def start_cursor(self) -> str | None:
        return self.cursors[0] if self.cursors else None

    @property
    def end_cursor(self) -> str | None:
        return self.cursors[-1] if self.cursors else None

    @property
    def next_cursor(self) -> str | None:
        return self.end_cursor if self.has_next_page else None


def _page(rows: list[Any], args: PageArgs) -> Page[Any]:
    more = len(rows) > args.limit
    rows = rows[: args.limit]
    if args.backwards:
        rows.reverse()
        page = Page(rows, has_next_page=args.before is not None, has_previous_page=more)
    else:
        page = Page(rows, has_next_page=more, has_previous_page=args.after is not None)
    page.cursors = [encode_cursor(row.id) for row in rows]
    return page


def _keyset(model: Any, args: PageArgs, newest_first: bool) -> tuple[list[Any], Any]:
    """Conditions and ordering for one page; ids sort by creation time."""
    conditions = []
    descending = newest_first != args.backwards
    if args.after is not None:
        conditions.append(model.id < args.after if newest_first else model.id > args.after)
    if args.before is not None:
        conditions.append(model.id > args.before if newest_first else model.id < args.before)
    return conditions, (model.id.desc() if descending else model.id.asc())


async def page_of(
    session: AsyncSession,
    model: Any,
    args: PageArgs,
    *,
    where: Sequence[Any] = (),
    newest_first: bool = True,
) -> Page[Any]:
    """One page of `model` rows matching `where`."""
    conditions, order = _keyset(model, args, newest_first)
    if args.limit == 0:
        return Page([])
    stmt = select(model).where(*where, *conditions).order_by(order).limit(args.limit + 1)
    rows = list((await session.execute(stmt)).scalars())
    return _page(rows, args)


async def pages_by_parent(
    session: AsyncSession,
    model: Any,
    parent_column: Any,
    parent_ids: Sequence[str],
    args: PageArgs,
    *,
    where: Sequence[Any] = (),
    newest_first: bool = True,
) -> dict[str, Page[Any]]:
    """The same page for many parents in one query (top-N per parent by a window function)."""
    if not parent_ids or args.limit == 0:
        return {parent_id: Page([]) for parent_id in parent_ids}
    if len(parent_ids) == 1:
        page = await page_of(
            session,
            model,
            args,
            where=[parent_column == parent_ids[0], *where],
            newest_first=newest_first,
        )
        return {parent_ids[0]: page}
    conditions, order = _keyset(model, args, newest_first)
    rank = func.row_number().over(partition_by=parent_column, order_by=order).label("_rank")
    inner = (
        select(model, rank)
        .where(parent_column.in_(list(parent_ids)), *where, *conditions)
        .subquery()
    )
    row_alias = aliased(model, inner)
    stmt = select(row_alias).where(inner.c._rank <= args.limit + 1).order_by(inner.c._rank)
    grouped: dict[str, list[Any]] = {parent_id: [] for parent_id in parent_ids}
    parent_key = parent_column.key
    for row in (await session.execute(stmt)).scalars():
        grouped[getattr(row, parent_key)].append(row)
    return {parent_id: _page(rows, args) for parent_id, rows in grouped.items()}
