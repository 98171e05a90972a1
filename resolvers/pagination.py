"""Keyset pagination on ULID ids: opaque cursors, hard page-size cap, one query per level."""

from __future__ import annotations

import base64
import binascii
import functools
from collections import namedtuple
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from sqlalchemy import (
    ARRAY,
    BindParameter,
    ColumnElement,
    Integer,
    Label,
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
from gateway.errors import ValidationFailed

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
# A column a `plain` page selects, labelled (with its model attribute's name): of any SQL type,
# as SQLAlchemy's mapper gives them.
PlainColumn = Label[Any]


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


class ExtraColumn(Hashable, Protocol):
    """A column the caller adds to a `plain` page's statement (`PageArgs.extra`), opaque here:
    the page selects the rows' keys and this column instead of the projected columns, and
    each item's last value is the column's (`Page.extra`). A row whose value is NULL means
    the caller cannot use it for that row: the page is read again without the extra column.
    Hashable: it is part of the page arguments and of the statement's cache key. The GraphQL
    engine's is a node's response object as JSON that the database writes
    (schema/engine/json_sql.py)."""

    @property
    def dialect(self) -> str:
        """The database dialect whose SQL the column is; on others it is not read."""
        ...

    def column(self, model: type[SQLModel]) -> PlainColumn:
        """The column for `model`'s rows (an SQL expression)."""
        ...


class PageArgs(NamedTuple):
    """Relay arguments, validated; hashable so a loader can batch parents sharing them (a
    named tuple: loaders hash their keys several times per parent, and a tuple hashes in C).

    `columns`: the model attributes a `plain` page's rows need (its id and parent column are
    always read), when the caller knows them, e.g. the fields a GraphQL query selects on the
    connection's nodes (`schema/engine/projection.py`); None reads every column. Rows of a
    projected page have only those attributes. `related`: relations the caller will read for
    every item (e.g. a member's user), which a loader may read in the same statement
    (`Joined`).
    `extra`: a column of the caller's that a `plain` page reads, with the rows' keys, instead
    of the columns (`ExtraColumn`, `Page.extra`), on the column's dialect; elsewhere
    `columns` are read as usual.
    """

    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None
    columns: tuple[str, ...] | None = None
    related: tuple[str, ...] = ()
    extra: ExtraColumn | None = None

    @classmethod
    @functools.lru_cache(maxsize=1024)  # pure; a level's parents share their arguments
    def build(
        cls,
        *,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        default: int,
        maximum: int,
        columns: tuple[str, ...] | None = None,
        related: tuple[str, ...] = (),
        extra: ExtraColumn | None = None,
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
            columns=columns,
            related=related,
            extra=extra,
        )

    @property
    def limit(self) -> int:
        return self.last if self.last is not None else (self.first or 0)

    @property
    def backwards(self) -> bool:
        return self.last is not None


@dataclass
class Page(Generic[T]):
    """A page of items (each with an `id`); cursors are encoded when asked for: a REST page
    sends only its last, a connection its first and last unless edges are selected."""

    items: list[T]
    has_next_page: bool = False
    has_previous_page: bool = False
    # The items are rows of their keys (id, parent id) and, last, the extra column's value
    # (`PageArgs.extra`), not of the model's columns.
    extra: bool = False

    @property
    def cursors(self) -> list[str]:
        return [encode_cursor(item.id) for item in self.items]  # type: ignore[attr-defined]

    @property
    def start_cursor(self) -> str | None:
        return encode_cursor(self.items[0].id) if self.items else None  # type: ignore[attr-defined]

    @property
    def end_cursor(self) -> str | None:
        return encode_cursor(self.items[-1].id) if self.items else None  # type: ignore[attr-defined]

    @property
    def next_cursor(self) -> str | None:
        return self.end_cursor if self.has_next_page else None


def _page(rows: list[T], args: PageArgs, extra: bool = False) -> Page[T]:
    more = len(rows) > args.limit
    rows = rows[: args.limit]
    if args.backwards:
        rows.reverse()
        page = Page(
            rows, has_next_page=args.before is not None, has_previous_page=more, extra=extra
        )
    else:
        page = Page(rows, has_next_page=more, has_previous_page=args.after is not None, extra=extra)
    return page


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
    extra = plain and _reads_extra(session, args)
    if plain:
        columns = select(*_columns(model, args, extra, "id"))
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
    return _page(rows, args, extra)


def _reads_extra(session: AsyncSession | RequestDatabase, args: PageArgs) -> bool:
    """Whether a plain page reads the extra column (`PageArgs.extra`): on its dialect."""
    return args.extra is not None and dialect_name(session) == args.extra.dialect


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
    extra = plain and joined is None and _reads_extra(session, args)
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
    pages = {parent_id: _page(rows, args, extra) for parent_id, rows in grouped.items()}
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
