"""Keyset pages in SQL on ULID ids: one page, or the same page for many parents in one
statement (a window function, or LATERAL on PostgreSQL), as ORM objects or read-only rows
(projected, joined, or with the caller's extra column)."""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from sqlalchemy import (
    ARRAY,
    BindParameter,
    ColumnElement,
    Integer,
    bindparam,
    func,
    select,
    true,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Mapped, aliased
from sqlalchemy.sql import Executable, FromClause
from sqlmodel import SQLModel

from gateway.db.expressions import one_of
from gateway.db.session import RequestDatabase, dialect_name, fetch_rows, orm_session
from resolvers.pagination import Page, PageArgs, PlainColumn

T = TypeVar("T")
M = TypeVar("M", bound=SQLModel)

R_co = TypeVar("R_co", covariant=True)


class RowType(Protocol[R_co]):
    """A named tuple class of a model's attributes (`plain_row_type`), whose rows are typed as
    the model: read-only, with the same attribute names."""

    def _make(self, iterable: Iterable[object], /) -> R_co: ...


# A model's attribute as SQL, e.g. a page's parent column (`attribute(col(Member.user_id))`).
Attribute = InstrumentedAttribute[str] | InstrumentedAttribute[str | None]
# A condition of a page's statement.
Condition = ColumnElement[bool]
# `pages_by_parent`'s `parent_of`: what the parent column must equal, from the parent's id.
ParentOf = Callable[[ColumnElement[str]], ColumnElement[str]]


def attribute(column: Mapped[T]) -> InstrumentedAttribute[T]:
    """`column` (what `sqlmodel.col(Model.attribute)` returns) as the instrumented attribute it
    is: `col` types it as `Mapped`, which declares neither its `key` nor its `type`."""
    found: InstrumentedAttribute[T] = column  # type: ignore[assignment]
    return found


def id_attribute(model: type[SQLModel]) -> InstrumentedAttribute[str]:
    """`model.id` as SQL: every table model here has a string `id`, which SQLModel types, on
    the class, as the row's value."""
    found: InstrumentedAttribute[str] = model.id  # type: ignore[attr-defined]
    return found


def _keyset(
    model: type[SQLModel], args: PageArgs, newest_first: bool
) -> tuple[list[Condition], ColumnElement[str]]:
    """Conditions and ordering for one page; ids sort by creation time."""
    conditions: list[Condition] = []
    descending = newest_first != args.backwards
    ids = id_attribute(model)
    if args.after is not None:
        conditions.append(ids < args.after if newest_first else ids > args.after)
    if args.before is not None:
        conditions.append(ids > args.before if newest_first else ids < args.before)
    return conditions, (ids.desc() if descending else ids.asc())


@functools.cache
def plain_columns(model: type[SQLModel]) -> tuple[PlainColumn, ...]:
    """`model`'s columns labelled with its attribute names (e.g. `metadata` as `metadata_`)."""
    return tuple(prop.columns[0].label(prop.key) for prop in sa_inspect(model).column_attrs)


@functools.lru_cache(maxsize=256)
def projected_columns(
    model: type[SQLModel], names: tuple[str, ...] | None, *keys: str
) -> tuple[PlainColumn, ...]:
    """`plain_columns` of the attributes `names` (all of them when None), and the `keys`
    (id, parent column) whatever `names` says; in the model's column order."""
    columns = plain_columns(model)
    if names is None:
        return columns
    wanted = {*names, *keys}
    unknown = wanted.difference(column.key for column in columns)
    if unknown:
        raise ValueError(f"{model.__name__} has no columns {sorted(unknown)}")
    return tuple(column for column in columns if column.key in wanted)


def _columns(
    model: type[SQLModel], args: PageArgs, extra: bool, *keys: str
) -> tuple[PlainColumn, ...]:
    """A `plain` page's columns: the keys and the extra column, or the projected columns."""
    if extra:
        assert args.extra is not None
        return (*projected_columns(model, (), *keys), args.extra.column(model))
    return projected_columns(model, args.columns, *keys)


@dataclass(frozen=True, eq=False)  # compared by identity: its columns are SQL expressions
class Joined(Generic[M]):
    """Another model's whole row read with each item of a `plain` page, by the page model's
    foreign key (a LEFT JOIN): its columns come last, labelled `<prefix>__<attribute>`, and
    `row_of(item)` is that row, as `plain_row_type(model)` (None when there is none)."""

    model: type[M]
    foreign_key: Attribute
    prefix: str

    @functools.cached_property
    def columns(self) -> tuple[PlainColumn, ...]:
        return tuple(
            column.element.label(f"{self.prefix}__{column.key}")
            for column in plain_columns(self.model)
        )

    @functools.cached_property
    def _id_index(self) -> int:
        return [column.key for column in plain_columns(self.model)].index("id")

    def row_of(self, item: object) -> M | None:
        # `item` is a plain page's row: a tuple, typed as its model by the page.
        values: Sequence[object] = item[-len(self.columns) :]  # type: ignore[index]
        return (
            plain_row_type(self.model)._make(values) if values[self._id_index] is not None else None
        )


@functools.cache
def plain_row_type(model: type[M]) -> RowType[M]:
    """A named tuple of `model`'s attributes: what `plain` pages hold (cheap attribute reads)."""
    # A class made at run time, whose rows the model describes (`RowType`).
    return namedtuple(  # type: ignore[return-value]
        f"{model.__name__}Row", [column.key for column in plain_columns(model)]
    )


async def page_of(
    session: AsyncSession | RequestDatabase,
    model: type[M],
    args: PageArgs,
    *,
    where: Sequence[Condition] = (),
    newest_first: bool = True,
    plain: bool = False,
) -> Page[M]:
    """One page of `model` rows matching `where`.

    `plain`: the items are read-only rows (attribute access by the model's attribute names)
    instead of ORM instances: several times cheaper to load, for lists nobody modifies.
    """
    conditions, order = _keyset(model, args, newest_first)
    if args.limit == 0:
        return Page([])
    extra = plain and reads_extra(session, args)
    if plain:
        columns = select(*_columns(model, args, extra, "id"))
        if extra:
            assert args.extra is not None
            columns = columns.select_from(args.extra.source(model))
        stmt = columns.where(*where, *conditions).order_by(order).limit(args.limit + 1)
        rows: list[M] = await fetch_rows(session, stmt)
        if extra and not _written(rows):
            return await page_of(
                session,
                model,
                args._replace(extra=None),
                where=where,
                newest_first=newest_first,
                plain=True,
            )
    else:
        entities = select(model).where(*where, *conditions).order_by(order).limit(args.limit + 1)
        rows = list((await orm_session(session).execute(entities)).scalars())
    return Page.of_rows(rows, args, extra)


def reads_extra(session: AsyncSession | RequestDatabase, args: PageArgs) -> bool:
    """Whether a plain page reads the extra column (`PageArgs.extra`): on its dialect, once
    the rules it shows things by are decided."""
    return (
        args.extra is not None and args.extra.ready and dialect_name(session) == args.extra.dialect
    )


async def pages_by_parent(
    session: AsyncSession | RequestDatabase,
    model: type[M],
    parent_column: Attribute,
    parent_ids: Sequence[str],
    args: PageArgs,
    *,
    where: Sequence[Condition] = (),
    newest_first: bool = True,
    plain: bool = False,
    params: Mapping[str, object] | None = None,
    joined: Joined[SQLModel] | None = None,
    parent_of: ParentOf | None = None,
) -> dict[str, Page[M]]:
    """The same page for many parents in one query (top-N per parent by a window function).

    `where` as a tuple (a module constant, with `bindparam`s whose values are in `params`) lets
    the statement be built once and reused: building it (the ranked subquery) costs more than
    running it.
    """
    if not parent_ids or args.limit == 0:
        return {parent_id: Page([]) for parent_id in parent_ids}
    many = len(parent_ids) > 1
    if parent_of is not None and many:
        raise ValueError("pages by a parent expression are one parent's at a time")
    lateral = many and dialect_name(session) == "postgresql"
    extra = plain and joined is None and reads_extra(session, args)
    stmt = _page_statement(
        model,
        parent_column,
        tuple(where),
        newest_first,
        args,
        plain,
        many,
        lateral,
        joined,
        parent_of,
        extra,
    )
    values: dict[str, object] = {"_limit": args.limit + 1, **(params or {})}
    if many:
        values["_parents"] = list(parent_ids)
    else:
        values["_parent"] = parent_ids[0]
    if args.after is not None:
        values["_after"] = args.after
    if args.before is not None:
        values["_before"] = args.before
    if plain:
        rows: Sequence[M] = await fetch_rows(session, stmt, values)
    else:
        rows = (await orm_session(session).execute(stmt, values)).scalars().all()
    grouped: dict[str, list[M]] = {parent_id: [] for parent_id in parent_ids}
    if many:
        parent_key = parent_column.key
        for row in rows:
            grouped[getattr(row, parent_key)].append(row)
    else:
        grouped[parent_ids[0]] = list(rows)
    pages = {parent_id: Page.of_rows(rows, args, extra) for parent_id, rows in grouped.items()}
    if extra:
        # Rows without the extra value (`ExtraColumn`): their pages again, without it.
        again = [p for p, page_rows in grouped.items() if not _written(page_rows)]
        if again:
            pages.update(
                await pages_by_parent(
                    session,
                    model,
                    parent_column,
                    again,
                    args._replace(extra=None),
                    where=where,
                    newest_first=newest_first,
                    plain=plain,
                    params=params,
                    parent_of=parent_of,
                )
            )
    return pages


def _written(rows: Sequence[object]) -> bool:
    """Whether every row of a page read with the extra column has its value."""
    # Rows read with the extra column are tuples whose last value is the column's.
    return all(row[-1] is not None for row in rows)  # type: ignore[index]


# (model, parent, id(where), shape) -> (where, statement); `where` is kept so its id stays its own.
_STATEMENTS: dict[tuple[Hashable, ...], tuple[tuple[Condition, ...], Executable]] = {}
_MAX_STATEMENTS = 512


def _page_statement(
    model: type[SQLModel],
    parent_column: Attribute,
    where: tuple[Condition, ...],
    newest_first: bool,
    args: PageArgs,
    plain: bool,
    many: bool,
    lateral: bool = False,
    joined: Joined[SQLModel] | None = None,
    parent_of: ParentOf | None = None,
    extra: bool = False,
) -> Executable:
    """The page statement for this shape of arguments, with bound parameters for the values.
    `lateral` (PostgreSQL): several parents' pages with a LATERAL join instead of a window.
    `joined` (plain pages): another model's row with each item, by a LEFT JOIN. `parent_of`
    (one parent): what `parent_column` must equal, as an expression of the parent's bound id
    (e.g. a scalar subquery from a user id to their account's id)."""
    shape = (args.backwards, args.after is not None, args.before is not None, args.columns)
    key: tuple[Hashable, ...] = (model, parent_column.key, id(where), newest_first, shape, plain)
    key = (*key, many, lateral, joined, parent_of, args.extra if extra else None)
    found = _STATEMENTS.get(key)
    if found is not None and found[0] is where:
        return found[1]
    conditions: list[Condition] = []
    descending = newest_first != args.backwards
    ids = id_attribute(model)
    if args.after is not None:
        after: BindParameter[str] = bindparam("_after")
        conditions.append(ids < after if newest_first else ids > after)
    if args.before is not None:
        before: BindParameter[str] = bindparam("_before")
        conditions.append(ids > before if newest_first else ids < before)
    order = ids.desc() if descending else ids.asc()
    limit = bindparam("_limit", type_=Integer)
    columns = _columns(model, args, extra, "id", parent_column.key) if plain else ()
    # A plain page selects its columns, an ORM page the model.
    selected: tuple[PlainColumn | type[SQLModel], ...] = columns if plain else (model,)
    source: type[SQLModel] | FromClause = model
    if extra:
        assert args.extra is not None
        source = args.extra.source(model)
    if joined is not None:
        assert plain, "joined rows are read as plain rows"
        columns = (*columns, *joined.columns)
        selected = columns
        source = sa_inspect(model).local_table.outerjoin(
            sa_inspect(joined.model).local_table,
            id_attribute(joined.model) == joined.foreign_key,
        )
    stmt: Executable
    if not many:
        stmt = (
            select(*selected)
            .select_from(source)
            .where(
                parent_column
                == (parent_of(bindparam("_parent")) if parent_of else bindparam("_parent")),
                *where,
                *conditions,
            )
            .order_by(order)
            .limit(limit)
        )
    elif lateral:
        # PostgreSQL: each parent's page by its own index scan (`ORDER BY id LIMIT n` per
        # parent); the window function below reads every row of every parent to rank them
        # (a member with 10^5 usages costs 10^5 rows for a page of 5).
        parents = (
            func.unnest(bindparam("_parents", type_=ARRAY(parent_column.type)))
            .table_valued("parent_id")
            .render_derived(name="_parents")
        )
        page = (
            select(*selected)
            .select_from(source)
            .where(parent_column == parents.c.parent_id, *where, *conditions)
            .order_by(order)
            .limit(limit)
            .lateral("_page")
        )
        outer = (
            select(*[page.c[column.key] for column in columns])
            if plain
            else select(aliased(model, page))
        )
        # One order for all rows keeps each parent's rows in its page's order.
        stmt = (
            outer.select_from(parents)
            .join(page, true())
            .order_by(page.c.id.desc() if descending else page.c.id.asc())
        )
    else:
        rank = func.row_number().over(partition_by=parent_column, order_by=order).label("_rank")
        inner = (
            select(*selected, rank)
            .select_from(source)
            .where(one_of(parent_column, "_parents"), *where, *conditions)
            .subquery()
        )
        if plain:
            outer = select(*[inner.c[column.key] for column in columns])
        else:
            outer = select(aliased(model, inner))
        stmt = outer.where(inner.c._rank <= limit).order_by(inner.c._rank)
    if len(_STATEMENTS) >= _MAX_STATEMENTS:
        _STATEMENTS.clear()
    _STATEMENTS[key] = (where, stmt)
    return stmt
